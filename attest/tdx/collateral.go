package tdx

import (
	"time"

	"github.com/medicus-cloud/trust/attest"
)

// The collateral lifecycle (ages, refresh, PCK recheck, bundle reload) is intel.Lifecycle,
// embedded in Verifier.

// UpdateTCB implements attest.TCBUpdater: the TD's TCB status and advisories recomputed from
// the claims under the collateral in use now for its platform (an Intel TCB recovery published
// since the token was issued). Claims of platforms trustd holds no collateral for keep theirs.
func (v *Verifier) UpdateTCB(c *attest.Claims, now time.Time) error {
	if c.TEE != attest.TDX {
		return nil
	}
	cur, prev, since, err := v.q.InUse(c.Platform["fmspc"], c.Platform["pck_ca"], now)
	if err != nil || cur == nil {
		return err
	}
	return v.appraiseClaims(c, cur, prev, since)
}
