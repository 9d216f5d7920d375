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
// policy; a grace's warning is returned for warn once every other check passed.
func (s *Service) updateTCB(bundle *policies.Bundle, policy string, c *attest.Claims) (string, error) {
	if s.o.TCB == nil {
		return "", nil
	}
	if err := s.o.TCB.Update(c, s.o.Now()); err != nil {
		if errors.Is(err, attest.ErrStaleClaims) {
			return "", fmt.Errorf("%w: %v", errAttestAgain, err)
		}
		return "", err
	}
	d := c.TCBDowngrade
	if d == nil {
		return "", nil
	}
	c.TCBDowngrade = nil
	if w := s.grace(bundle, policy, c, d); w != "" {
		c.TCBStatus, c.Advisories = d.Status, d.Advisories
		return w, nil
	}
	return "", d.Refusal // nil: the policy judges the new status
}

// warn records a grace's warning in the decision's record and counts it.
func (s *Service) warn(tee attest.TEE, w string, rec *audit.Record) {
	if w == "" {
		return
	}
	rec.Warnings = append(rec.Warnings, w)
	s.o.Metrics.TCBGrace(string(tee))
}

// evaluateAttest is bundle.Evaluate, trying first the previous status of a platform a TCB
// recovery downgraded: it stands when the policy that accepts it grants a grace still running.
// The grace's warning is returned for warn.
func (s *Service) evaluateAttest(bundle *policies.Bundle, c *attest.Claims) (*policies.Decision, string, error) {
	if d := c.TCBDowngrade; d != nil {
		c.TCBDowngrade = nil
		graced := *c
		graced.TCBStatus, graced.Advisories = d.Status, d.Advisories
		if dec, err := bundle.Evaluate(&graced); err == nil {
			if w := s.grace(bundle, dec.Policy, c, d); w != "" {
				*c = graced // the token carries the status the policy accepted
				return dec, w, nil
			}
		}
		if d.Refusal != nil {
			return nil, "", d.Refusal
		}
	}
	dec, err := bundle.Evaluate(c)
	return dec, "", err
}

// grace returns the warning when policy's tcbRecoveryGrace covers the downgrade d of c now,
// else "". Debug guests are never graced.
func (s *Service) grace(bundle *policies.Bundle, policy string, c *attest.Claims, d *attest.TCBDowngrade) string {
	g := bundle.TCBRecoveryGrace(policy)
	end := d.Since.Add(g)
	if g <= 0 || c.Debug || d.Since.IsZero() || !s.o.Now().Before(end) {
		return ""
	}
	now := c.TCBStatus
	if len(c.Advisories) > 0 {
		now += " (" + strings.Join(c.Advisories, ", ") + ")"
	}
	return fmt.Sprintf("tcb recovery grace: TCB status %s under tcbEvaluationDataNumber %d, appraised as %s (number %d) until %s (policy %s, grace %s)",
		now, d.ToEval, d.Status, d.FromEval, end.UTC().Format(time.RFC3339), policy, g)
}
