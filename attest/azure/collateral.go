package azure

import (
	"context"
	"time"

	"github.com/medicus-cloud/trust/attest"
)

// The collateral lifecycle (issue 16) of the Azure schemes is that of the verifier that
// authenticates the paravisor's reports: its scheduled refresh, its ages in metrics and
// `trustctl status` (under this scheme's TEE name, so that a deployment with bare-metal and
// Azure verifiers tells them apart) and its recheck of outstanding tokens at every release.

var (
	_ attest.CollateralReporter  = (*Verifier)(nil)
	_ attest.CollateralRefresher = (*Verifier)(nil)
	_ attest.ClaimsRechecker     = (*Verifier)(nil)
	_ attest.TCBUpdater          = (*Verifier)(nil)
)

// inner returns the SNP or TDX verifier (nil if neither) and the TEE its own claims name.
func (v *Verifier) inner() (any, attest.TEE) {
	switch {
	case v.snp != nil:
		return v.snp, attest.SEVSNP
	case v.tdx != nil:
		return v.tdx, attest.TDX
	}
	return nil, ""
}

// asInner returns the inner verifier and a copy of c as that verifier's own claims; nil, nil for
// claims of another scheme.
func (v *Verifier) asInner(c *attest.Claims) (any, *attest.Claims) {
	if c.TEE != v.tee {
		return nil, nil
	}
	in, tee := v.inner()
	cc := *c
	cc.TEE = tee
	return in, &cc
}

// CollateralAges implements attest.CollateralReporter.
func (v *Verifier) CollateralAges() []attest.CollateralAge {
	in, _ := v.inner()
	r, ok := in.(attest.CollateralReporter)
	if !ok {
		return nil
	}
	ages := r.CollateralAges()
	for i := range ages {
		ages[i].TEE = v.tee
	}
	return ages
}

// RefreshCollateral implements attest.CollateralRefresher.
func (v *Verifier) RefreshCollateral(ctx context.Context, now time.Time) {
	in, _ := v.inner()
	if r, ok := in.(attest.CollateralRefresher); ok {
		r.RefreshCollateral(ctx, now)
	}
}

// RecheckClaims implements attest.ClaimsRechecker: claims of this scheme are rechecked as the
// inner verifier's own (a PCK or an AMD signing key revoked since the token was issued).
func (v *Verifier) RecheckClaims(c *attest.Claims, now time.Time) error {
	in, cc := v.asInner(c)
	if r, ok := in.(attest.ClaimsRechecker); ok {
		return r.RecheckClaims(cc, now)
	}
	return nil
}

// UpdateTCB implements attest.TCBUpdater: the TCB status of this scheme's claims is recomputed
// as the inner verifier's own (an Intel TCB recovery since the token was issued).
func (v *Verifier) UpdateTCB(c *attest.Claims, now time.Time) error {
	in, cc := v.asInner(c)
	u, ok := in.(attest.TCBUpdater)
	if !ok {
		return nil
	}
	if err := u.UpdateTCB(cc, now); err != nil {
		return err
	}
	c.TCBStatus, c.Advisories, c.TCBDowngrade = cc.TCBStatus, cc.Advisories, cc.TCBDowngrade
	return nil
}
