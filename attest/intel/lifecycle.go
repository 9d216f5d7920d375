package intel

import (
	"context"
	"path/filepath"
	"time"

	"github.com/medicus-cloud/trust/attest"
)

// Lifecycle is the collateral lifecycle (issue 16) that the TDX and SGX verifiers share over
// their QuoteVerifier: collateral ages for metrics and status, the scheduled refresh, the
// release recheck of a token's PCK against the PCK CRL in use, and the reload of an imported
// collateral bundle. A verifier embeds it, which makes it an attest.CollateralReporter,
// CollateralRefresher, ClaimsRechecker and BundleLoader.
type Lifecycle struct {
	q   *QuoteVerifier
	tee attest.TEE
	// wantID is the TCB info ID the bundle's platforms must carry ("" when appraisal checks it).
	wantID string
	// bundle is set when the section is offline with an imported collateral bundle.
	bundle bool
}

// NewLifecycle returns the lifecycle of a verifier of tee's quotes over q.
func NewLifecycle(q *QuoteVerifier, tee attest.TEE, wantID string) Lifecycle {
	return Lifecycle{q: q, tee: tee, wantID: wantID}
}

// CollateralAges implements attest.CollateralReporter: the age of the online Intel collateral
// of each platform the verifier has seen.
func (l *Lifecycle) CollateralAges() []attest.CollateralAge { return l.q.CollateralAges() }

// UseBundle makes an imported collateral bundle's platforms of this TEE offline collateral,
// when the section is offline; otherwise the bundle is none of the verifier's business.
func (l *Lifecycle) UseBundle(offline bool, bundleDir string) error {
	if !offline || bundleDir == "" {
		return nil
	}
	l.bundle = true
	return l.LoadBundle(bundleDir)
}

// LoadBundle implements attest.BundleLoader: it reads this TEE's platforms of the bundle
// extracted in bundleDir again (bundleDir/intel/{tdx,sgx}), replacing the loaded set only when
// all of them read. A section that is not offline ignores it.
func (l *Lifecycle) LoadBundle(bundleDir string) error {
	if !l.bundle {
		return nil
	}
	return l.q.LoadPlatforms(filepath.Join(bundleDir, "intel", string(l.tee)), string(l.tee), l.wantID)
}

// RefreshCollateral implements attest.CollateralRefresher.
func (l *Lifecycle) RefreshCollateral(ctx context.Context, now time.Time) {
	l.q.RefreshCollateral(ctx, now)
}

// RecheckClaims implements attest.ClaimsRechecker: claims whose PCK the PCK CRL in use now
// (offline or online) revokes are refused at the next release.
func (l *Lifecycle) RecheckClaims(c *attest.Claims, now time.Time) error {
	if c.TEE != l.tee {
		return nil
	}
	return l.q.RecheckPCK(c.Platform["fmspc"], c.Platform["pck_ca"], c.Platform[ClaimPCKSerial], now)
}
