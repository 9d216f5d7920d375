package policies

import (
	"bytes"
	"fmt"

	"github.com/medicus-cloud/trust/attest"
)

// Reappraise decides, at release time, whether the current bundle still accepts the claims a
// result token was issued for: policy is the token's policy name and c the verified claims it
// carries. It runs every check of that policy (TEE, measurement or signer, debug and migration,
// TCB minima, accepted TCB statuses and advisories, configuration, CEL rules), so a reload that
// tightens any of them stops releases to outstanding tokens at once. Only the token's own policy
// may vouch: its grants are the ones the token names. A refusal is a *Denial.
func (b *Bundle) Reappraise(policy string, c *attest.Claims) error {
	if c == nil {
		return ErrNoClaims
	}
	p := b.Policy(policy)
	if p == nil {
		return &Denial{Policy: policy, Claim: "policy", Seen: policy, Expected: fmt.Sprintf("a policy of the active bundle (version %d)", b.Version)}
	}
	var vars map[string]any
	if d := p.eval(c, &vars, nil); d != nil {
		return d
	}
	return nil
}

// SameImage reports whether claims c are those of a token naming tee and measurement; the
// service checks it before trusting the claims a token carries.
func SameImage(c *attest.Claims, tee attest.TEE, measurement []byte) bool {
	return c != nil && c.TEE == tee && bytes.Equal(c.Measurement, measurement)
}
