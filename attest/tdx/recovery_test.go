package tdx_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/intel/inteltest"
	"github.com/medicus-cloud/trust/attest/tdx"
	"github.com/medicus-cloud/trust/attest/tdx/tdxtest"
)

var minutely = intel.Freshness{RefreshInterval: time.Minute, MaxAge: time.Hour}

func cloneClaims(c *attest.Claims) *attest.Claims {
	d := *c
	d.Config, d.TCB, d.Platform = maps.Clone(c.Config), maps.Clone(c.TCB), maps.Clone(c.Platform)
	return &d
}

// TestTCBRecoveryAtRelease: Intel publishes a TCB recovery; after the next refresh, claims
// issued UpToDate recompute to OutOfDate with the recovery's advisory, reported as a downgrade
// from the previous set (never for a revoked PCK); claims without the recorded QE fields, or
// a verifier that holds no online collateral in memory, cannot be recomputed.
func TestTCBRecoveryAtRelease(t *testing.T) {
	f := fx(t)
	good, err := f.Collateral(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	recovered, err := f.Recovered(false)
	if err != nil {
		t.Fatal(err)
	}
	pcs := inteltest.NewPCS(t, good)
	o := tdx.Options{Root: f.PKI.Root, PCSURL: pcs.URL(), Getter: pcs.Getter(), CacheDir: t.TempDir(), Freshness: minutely}
	v := mustNew(t, o)
	ctx := context.Background()
	q := f.Quote(f.DefaultSpec())
	issued, err := v.Verify(ctx, ev(q, nil), attest.Options{Now: f.Now})
	if err != nil {
		t.Fatal(err)
	}
	if issued.TCBStatus != "UpToDate" || issued.TCBDowngrade != nil || len(issued.Config[intel.ClaimQEAttributes]) != 16 {
		t.Fatalf("issued %s %+v, config %v", issued.TCBStatus, issued.TCBDowngrade, issued.Config)
	}
	c := cloneClaims(issued)
	if err := v.UpdateTCB(c, f.Now.Add(30*time.Second)); err != nil || c.TCBStatus != "UpToDate" || c.TCBDowngrade != nil {
		t.Fatalf("before the recovery: %v %s %+v", err, c.TCBStatus, c.TCBDowngrade)
	}

	pcs.Set(recovered)
	at := f.Now.Add(2 * time.Minute)
	v.RefreshCollateral(ctx, at)
	c = cloneClaims(issued)
	if err := v.UpdateTCB(c, at); err != nil {
		t.Fatal(err)
	}
	d := c.TCBDowngrade
	if c.TCBStatus != "OutOfDate" || !slices.Equal(c.Advisories, []string{tdxtest.RecoveryAdvisory}) || d == nil ||
		d.Status != "UpToDate" || d.FromEval != 17 || d.ToEval != 18 || !d.Since.Equal(at) || !errors.Is(d.Refusal, attest.ErrNotAuthentic) {
		t.Fatalf("after the recovery: %s %v, downgrade %+v", c.TCBStatus, c.Advisories, d)
	}
	// A restart on the same cache keeps the previous set and when the newer one was accepted.
	rc, err := mustNew(t, o).Verify(ctx, ev(q, nil), attest.Options{Now: at.Add(30 * time.Second)})
	if err != nil || rc.TCBDowngrade == nil || !rc.TCBDowngrade.Since.Equal(at) || rc.TCBDowngrade.FromEval != 17 {
		t.Fatalf("restarted on the cache: %v %+v", err, rc)
	}
	// A new attestation sees the same, and the since time stays that of the first acceptance.
	v.RefreshCollateral(ctx, at.Add(5*time.Minute))
	fresh, err := v.Verify(ctx, ev(q, nil), attest.Options{Now: at.Add(5 * time.Minute)})
	if err != nil || fresh.TCBStatus != "OutOfDate" || fresh.TCBDowngrade == nil || !fresh.TCBDowngrade.Since.Equal(at) {
		t.Fatalf("attest after the recovery: %v %+v", err, fresh)
	}
	// Without the recovery's previous set (a verifier that never saw it) the status is plainly
	// refused.
	pcs.Set(recovered)
	v2 := mustNew(t, tdx.Options{Root: f.PKI.Root, PCSURL: pcs.URL(), Getter: pcs.Getter(), Freshness: minutely})
	if _, err := v2.Verify(ctx, ev(q, nil), attest.Options{Now: at}); !errors.Is(err, attest.ErrNotAuthentic) {
		t.Fatalf("fresh verifier after the recovery: %v", err)
	}

	// Claims of an older trustd, and a verifier without the platform in memory: attest again.
	old := cloneClaims(issued)
	delete(old.Config, intel.ClaimQEAttributes)
	if err := v.UpdateTCB(old, at); !errors.Is(err, attest.ErrStaleClaims) {
		t.Fatalf("claims without the QE fields: %v", err)
	}
	if err := mustNew(t, o).UpdateTCB(cloneClaims(issued), at); !errors.Is(err, attest.ErrStaleClaims) {
		t.Fatalf("verifier without online collateral in memory: %v", err)
	}
	// Past the maximum age: Unavailable.
	if err := v.UpdateTCB(cloneClaims(issued), at.Add(2*time.Hour)); !errors.Is(err, attest.ErrUnavailable) {
		t.Fatalf("collateral past its maximum age: %v", err)
	}
	// Evidence-supplied collateral only: nothing of trustd's own to recompute with.
	off := mustNew(t, tdx.Options{Root: f.PKI.Root})
	c = cloneClaims(issued)
	if err := off.UpdateTCB(c, at); err != nil || c.TCBStatus != "UpToDate" {
		t.Fatalf("no collateral of trustd's own: %v %s", err, c.TCBStatus)
	}

	// A revoked PCK is refused, downgrade or not.
	revoked, err := f.Recovered(true)
	if err != nil {
		t.Fatal(err)
	}
	pcs.Set(revoked)
	later := at.Add(10 * time.Minute)
	v.RefreshCollateral(ctx, later)
	if _, err := v.Verify(ctx, ev(q, nil), attest.Options{Now: later}); !errors.Is(err, attest.ErrNotAuthentic) {
		t.Fatalf("revoked PCK at attest: %v", err)
	}
	if err := v.RecheckClaims(cloneClaims(issued), later); err == nil {
		t.Fatal("revoked PCK at release passed")
	}
}
