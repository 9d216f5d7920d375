package tdx

import "github.com/medicus-cloud/trust/attest"

// CollateralAges implements attest.CollateralReporter: the age of the online Intel collateral
// of each platform this verifier has seen.
func (v *Verifier) CollateralAges() []attest.CollateralAge { return v.q.CollateralAges() }
