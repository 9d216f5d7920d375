package sgx

import (
	"context"
	"path/filepath"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/intel"
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
	v.bundle = true
	return v.LoadBundle(bundleDir)
}

// LoadBundle implements attest.BundleLoader: it reads the SGX platforms of the bundle extracted
// in bundleDir again, replacing the loaded set only when all of them read. A section that is not
// offline ignores it.
func (v *Verifier) LoadBundle(bundleDir string) error {
	if !v.bundle {
		return nil
	}
	return v.q.LoadPlatforms(filepath.Join(bundleDir, "intel", "sgx"), "sgx", "SGX")
}

// RefreshCollateral implements attest.CollateralRefresher.
func (v *Verifier) RefreshCollateral(ctx context.Context, now time.Time) {
	v.q.RefreshCollateral(ctx, now)
}

// RecheckClaims implements attest.ClaimsRechecker: claims whose PCK the online PCK CRL in use now
// revokes are refused at the next release.
func (v *Verifier) RecheckClaims(c *attest.Claims, now time.Time) error {
	if c.TEE != attest.SGX {
		return nil
	}
	return v.q.RecheckPCK(c.Platform["fmspc"], c.Platform["pck_ca"], c.Platform[intel.ClaimPCKSerial], now)
}

// UpdateTCB implements attest.TCBUpdater: the enclave platform's TCB status and advisories
// recomputed from the claims under the collateral in use now for its platform. Claims of
// platforms trustd holds no collateral for keep theirs.
func (v *Verifier) UpdateTCB(c *attest.Claims, now time.Time) error {
	if c.TEE != attest.SGX {
		return nil
	}
	cur, prev, since, err := v.q.InUse(c.Platform["fmspc"], c.Platform["pck_ca"], now)
	if err != nil || cur == nil {
		return err
	}
	return v.appraiseClaims(c, cur, prev, since)
}
