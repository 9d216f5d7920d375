package sgx

import (
	"context"
	"path/filepath"
	"time"

	"github.com/medicus-cloud/trust/attest"
)

// CollateralAges implements attest.CollateralReporter: the age of the online Intel collateral
// of each platform this verifier has seen.
func (v *Verifier) CollateralAges() []attest.CollateralAge { return v.q.CollateralAges() }

// loadBundle makes an imported collateral bundle's SGX platforms offline collateral, when the
// section is offline.
func (v *Verifier) loadBundle(offline bool, bundleDir string) error {
	if !offline || bundleDir == "" {
		return nil
	}
	return v.q.LoadPlatforms(filepath.Join(bundleDir, "intel", "sgx"), "sgx", "SGX")
}

// RefreshCollateral implements attest.CollateralRefresher.
func (v *Verifier) RefreshCollateral(ctx context.Context, now time.Time) {
	v.q.RefreshCollateral(ctx, now)
}
