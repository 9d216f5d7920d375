package service

import (
	"encoding/hex"
	"encoding/json"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/ear"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/policies"
)

// recordedClaims is the JSON of the claims a policy can read, for the audit record: the claims
// without report_data (a nonce binding, of no use to a replay).
func recordedClaims(c *attest.Claims) json.RawMessage {
	cc := *c
	cc.ReportData = nil
	b, err := json.Marshal(&cc)
	if err != nil {
		return nil
	}
	return b
}

// tenantDigest is the keyed digest of the context's tenant alone; "" without a tenant.
func tenantDigest(k *audit.ContextKey, b kms.Bound) string {
	t, ok := b.Value(audit.TenantField)
	if !ok {
		return ""
	}
	c, err := kms.Context{audit.TenantField: t}.Canonical()
	if err != nil {
		return ""
	}
	return k.Digest(t, c)
}

func (s *Service) shadowBundle() *policies.Bundle {
	if s.o.Shadow == nil {
		return nil
	}
	return s.o.Shadow.Current()
}

func shadowOf(b *policies.Bundle, policy string, err error) *audit.ShadowDecision {
	d := &audit.ShadowDecision{PolicyDigest: hex.EncodeToString(b.Digest), Policy: policy, Verdict: audit.VerdictAllow}
	if err != nil {
		d.Verdict, d.Reason = string(verdictOf(err)), redactContext(err).Error()
	}
	return d
}

// shadowAttest records what the candidate bundle would decide on these claims.
func (s *Service) shadowAttest(c *attest.Claims, rec *audit.Record) {
	b := s.shadowBundle()
	if b == nil {
		return
	}
	dec, err := b.Evaluate(c)
	policy := ""
	if dec != nil {
		policy = dec.Policy
	}
	rec.Shadow = shadowOf(b, policy, err)
}

// shadowRelease records whether the candidate bundle would still honour this release's token:
// the image and the grant with its context constraints (consent is checked by the active
// bundle's rules only; a candidate that adds a consent requirement shows as allow here).
func (s *Service) shadowRelease(tc *ear.Claims, r *releaseCall, rec *audit.Record) {
	b := s.shadowBundle()
	if b == nil {
		return
	}
	grant := r.kind.Grant()
	err := b.Revalidate(tc.Policy, attest.TEE(tc.TEE), tc.Measurement)
	if err == nil {
		err = b.CheckContext(tc.Policy, grant, r.name, r.kc)
	}
	rec.Shadow = shadowOf(b, tc.Policy, err)
}
