package service

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/policies"
)

// TCB status at release and TCB recovery grace (issue 16). A token's claims carry the TCB
// status Intel's TCB info gave at attestation; every release recomputes it from the claims'
// TCB components under the collateral in use now (ClaimsUpdater) before the policy re-appraises
// them, so that a TCB recovery reaches outstanding tokens within one collateral refresh. A
// platform the recovery downgraded (attest.TCBDowngrade) is appraised under its previous
// status while its policy's tcbRecoveryGrace lasts, with a warning in the audit record.

// ClaimsUpdater recomputes claims that depend on collateral (the Intel TCB status) from what
// the verifiers hold now. It must read only memory. Errors wrapping attest.ErrStaleClaims mean
// the claims cannot be recomputed (an older token): the workload attests again.
type ClaimsUpdater interface {
	Update(c *attest.Claims, now time.Time) error
}

// updateTCB recomputes the TCB status of a token's claims and settles any downgrade under
// policy.
func (s *Service) updateTCB(bundle *policies.Bundle, policy string, c *attest.Claims, rec *audit.Record) error {
	if s.o.TCB == nil {
		return nil
	}
	if err := s.o.TCB.Update(c, s.o.Now()); err != nil {
		if errors.Is(err, attest.ErrStaleClaims) {
			return fmt.Errorf("%w: %v", errAttestAgain, err)
		}
		return err
	}
	d := c.TCBDowngrade
	if d == nil {
		return nil
	}
	c.TCBDowngrade = nil
	if s.grace(bundle, policy, c, d, rec) {
		c.TCBStatus, c.Advisories = d.Status, d.Advisories
		return nil
	}
	return d.Refusal // nil: the policy judges the new status
}

// evaluateAttest is bundle.Evaluate, trying first the previous status of a platform a TCB
// recovery downgraded: it stands when the policy that accepts it grants a grace still running.
func (s *Service) evaluateAttest(bundle *policies.Bundle, c *attest.Claims, rec *audit.Record) (*policies.Decision, error) {
	if d := c.TCBDowngrade; d != nil {
		c.TCBDowngrade = nil
		graced := *c
		graced.TCBStatus, graced.Advisories = d.Status, d.Advisories
		if dec, err := bundle.Evaluate(&graced); err == nil && s.grace(bundle, dec.Policy, c, d, rec) {
			*c = graced // the token carries the status the policy accepted
			return dec, nil
		}
		if d.Refusal != nil {
			return nil, d.Refusal
		}
	}
	return bundle.Evaluate(c)
}

// grace reports whether policy's tcbRecoveryGrace covers the downgrade d of c now, and if so
// records the warning and counts it. Debug guests are never graced.
func (s *Service) grace(bundle *policies.Bundle, policy string, c *attest.Claims, d *attest.TCBDowngrade, rec *audit.Record) bool {
	g := bundle.TCBRecoveryGrace(policy)
	end := d.Since.Add(g)
	if g <= 0 || c.Debug || d.Since.IsZero() || !s.o.Now().Before(end) {
		return false
	}
	now := c.TCBStatus
	if len(c.Advisories) > 0 {
		now += " (" + strings.Join(c.Advisories, ", ") + ")"
	}
	rec.Warnings = append(rec.Warnings, fmt.Sprintf("tcb recovery grace: TCB status %s under tcbEvaluationDataNumber %d, appraised as %s (number %d) until %s (policy %s, grace %s)",
		now, d.ToEval, d.Status, d.FromEval, end.UTC().Format(time.RFC3339), policy, g))
	s.o.Metrics.TCBGrace(string(c.TEE))
	return true
}
