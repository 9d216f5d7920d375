package sgx

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/sgx/sgxtest"
)

// TestTCBRecoveryAtRelease: after Intel's TCB recovery reaches the online collateral, claims
// issued UpToDate recompute to OutOfDate, reported as a downgrade from the previous set; claims
// of an older trustd (no PCK TCB components) cannot be recomputed.
func TestTCBRecoveryAtRelease(t *testing.T) {
	p := testPKI(t)
	pcs := &fakePCS{files: p.Collateral(t, sgxtest.CollateralOptions{})}
	v, err := New(Options{Root: p.Root, PCSURL: "https://pccs.test", Getter: pcs,
		Freshness: intel.Freshness{RefreshInterval: time.Minute, MaxAge: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	issued, err := v.Verify(ctx, sgxEvidence(goodQuote(t, 3)), attest.Options{Now: fixtureNow})
	if err != nil || issued.TCBStatus != "UpToDate" {
		t.Fatalf("%v %+v", err, issued)
	}
	clone := func() *attest.Claims {
		c := *issued
		c.Config = maps.Clone(issued.Config)
		return &c
	}
	pcs.files = p.Collateral(t, sgxtest.CollateralOptions{PlatformStatus: intel.OutOfDate, Advisories: []string{"INTEL-SA-00099"}, EvalNumber: 18})
	at := fixtureNow.Add(2 * time.Minute)
	v.RefreshCollateral(ctx, at)
	c := clone()
	if err := v.UpdateTCB(c, at); err != nil {
		t.Fatal(err)
	}
	if d := c.TCBDowngrade; c.TCBStatus != "OutOfDate" || !slices.Equal(c.Advisories, []string{"INTEL-SA-00099"}) || d == nil ||
		d.Status != "UpToDate" || d.FromEval != 17 || d.ToEval != 18 || !d.Since.Equal(at) || d.Refusal == nil {
		t.Fatalf("after the recovery: %s %v %+v", c.TCBStatus, c.Advisories, d)
	}
	old := clone()
	delete(old.Config, intel.ClaimPCKTCBComponents)
	if err := v.UpdateTCB(old, at); !errors.Is(err, attest.ErrStaleClaims) {
		t.Fatalf("claims without the PCK components: %v", err)
	}
	// A TDX verifier's claims are not this verifier's business.
	other := clone()
	other.TEE = attest.TDX
	if err := v.UpdateTCB(other, at); err != nil || other.TCBStatus != "UpToDate" {
		t.Fatalf("TDX claims: %v %s", err, other.TCBStatus)
	}
}
