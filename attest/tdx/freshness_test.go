package tdx_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/intel/inteltest"
	"github.com/medicus-cloud/trust/attest/tdx"
)

// newPCS is a fake PCS serving c for the fixture's platform (FMSPC 90c06f000000, platform CA),
// whose collateral a test replaces over its controlled clock as Intel does when it revokes a
// PCK or publishes a TCB recovery.
func newPCS(t *testing.T, c *intel.Collateral) *inteltest.PCS {
	return inteltest.NewPCS(t, c).Expect("90c06f000000", "platform")
}

// verifierAt is a verifier with o's root that fetches from pcs into cache.
func verifierAt(t *testing.T, pcs *inteltest.PCS, o tdx.Options, cache string, fr intel.Freshness) *tdx.Verifier {
	o.PCSURL, o.Getter, o.CacheDir, o.Freshness = pcs.URL(), pcs.Getter(), cache, fr
	return mustNew(t, o)
}

var hourly = intel.Freshness{RefreshInterval: time.Hour, MaxAge: 6 * time.Hour}

// A PCK that Intel revokes is refused within one refresh interval, long before the cached
// collateral's nextUpdate (a month), and also by a verifier restarted on the same cache.
func TestRevokedPCKWithinRefreshInterval(t *testing.T) {
	f := fx(t)
	good, revoked := collateralPair(t, f)
	pcs := newPCS(t, good)
	cache := t.TempDir()
	v := verifierAt(t, pcs, tdx.Options{Root: f.PKI.Root}, cache, hourly)
	q := f.Quote(f.DefaultSpec())
	ctx := context.Background()
	at := func(v *tdx.Verifier, d time.Duration) error {
		_, err := v.Verify(ctx, ev(q, nil), attest.Options{Now: f.Now.Add(d)})
		return err
	}
	if err := at(v, 0); err != nil {
		t.Fatal(err)
	}
	pcs.Set(revoked)
	if err := at(v, 59*time.Minute); err != nil {
		t.Fatalf("within the refresh interval the last fetched set serves: %v", err)
	}
	if err := at(v, 61*time.Minute); !errors.Is(err, attest.ErrNotAuthentic) {
		t.Fatalf("after the refresh interval: %v, want the revoked PCK refused", err)
	}

	// A restart on a cache fetched before the revocation refetches once its fetch is older
	// than the interval.
	pcs.Set(good)
	cache2 := t.TempDir()
	if err := at(verifierAt(t, pcs, tdx.Options{Root: f.PKI.Root}, cache2, hourly), 0); err != nil {
		t.Fatal(err)
	}
	pcs.Set(revoked)
	if err := at(verifierAt(t, pcs, tdx.Options{Root: f.PKI.Root}, cache2, hourly), 30*time.Minute); err != nil {
		t.Fatalf("restarted within the interval: %v", err)
	}
	if err := at(verifierAt(t, pcs, tdx.Options{Root: f.PKI.Root}, cache2, hourly), 61*time.Minute); !errors.Is(err, attest.ErrNotAuthentic) {
		t.Fatalf("restarted after the interval: %v, want the revoked PCK refused", err)
	}
}

// A failed refresh keeps the last good set until MaxAge, then fails closed naming the platform.
func TestFailedRefreshMaxAge(t *testing.T) {
	f := fx(t)
	good, _ := f.Collateral(nil, nil, false)
	pcs := newPCS(t, good)
	q := f.Quote(f.DefaultSpec())
	ctx := context.Background()
	for _, restart := range []bool{false, true} {
		pcs.Down.Store(false)
		cache := t.TempDir()
		v := verifierAt(t, pcs, tdx.Options{Root: f.PKI.Root}, cache, hourly)
		if _, err := v.Verify(ctx, ev(q, nil), attest.Options{Now: f.Now}); err != nil {
			t.Fatal(err)
		}
		pcs.Down.Store(true)
		if restart {
			v = verifierAt(t, pcs, tdx.Options{Root: f.PKI.Root}, cache, hourly)
		}
		if _, err := v.Verify(ctx, ev(q, nil), attest.Options{Now: f.Now.Add(5 * time.Hour)}); err != nil {
			t.Fatalf("restart %v: PCS down, last good set 5h old: %v", restart, err)
		}
		_, err := v.Verify(ctx, ev(q, nil), attest.Options{Now: f.Now.Add(7 * time.Hour)})
		if !errors.Is(err, attest.ErrUnavailable) || !strings.Contains(err.Error(), "90c06f000000") {
			t.Fatalf("restart %v: PCS down, last good set 7h old: %v, want Unavailable naming the FMSPC", restart, err)
		}
	}
}

// Collateral older than the newest seen is refused, from PCS and from the attester; so is
// collateral below the minimum TCB evaluation data number.
func TestOlderCollateralRefused(t *testing.T) {
	f := fx(t)
	newer := f.TCBInfo()
	newer.TCBEvaluationDataNumber = 18
	newerQE := f.QEIdentity()
	newerQE.TCBEvaluationDataNumber = 18
	c18, _ := f.Collateral(newer, newerQE, false)
	c17, _ := f.Collateral(nil, nil, false)
	pcs := newPCS(t, c18)
	q := f.Quote(f.DefaultSpec())
	ctx := context.Background()
	v := verifierAt(t, pcs, tdx.Options{Root: f.PKI.Root}, t.TempDir(), hourly)
	if _, err := v.Verify(ctx, ev(q, nil), attest.Options{Now: f.Now}); err != nil {
		t.Fatal(err)
	}
	pcs.Set(c17) // a stale PCCS serves a pre-recovery set
	if _, err := v.Verify(ctx, ev(q, nil), attest.Options{Now: f.Now.Add(2 * time.Hour)}); err != nil {
		t.Fatalf("the newer last good set serves until MaxAge: %v", err)
	}
	_, err := v.Verify(ctx, ev(q, nil), attest.Options{Now: f.Now.Add(7 * time.Hour)})
	if !errors.Is(err, attest.ErrNotAuthentic) || !errors.Is(err, intel.ErrOlder) {
		t.Fatalf("only older collateral past MaxAge: %v", err)
	}

	// Attester-supplied collateral, on a trustd with no source of its own: only at or above
	// the minimum.
	off := mustNew(t, tdx.Options{Root: f.PKI.Root, Freshness: intel.Freshness{MinTCBEvaluationDataNumber: 18}})
	if _, err := off.Verify(ctx, ev(q, c17), attest.Options{Now: f.Now}); !errors.Is(err, intel.ErrOlder) {
		t.Fatalf("attester-supplied collateral below the minimum: %v", err)
	}
	if _, err := off.Verify(ctx, ev(q, c18), attest.Options{Now: f.Now}); err != nil {
		t.Fatalf("attester-supplied collateral at the minimum: %v", err)
	}
}

// TestOlderSuppliedCollateralRefused: on a trustd with no collateral source of its own, once an
// attester supplied a set for a platform, an older set for the same platform (a pre-recovery
// TCB info still within its validity window, which may rate the platform better) is refused.
func TestOlderSuppliedCollateralRefused(t *testing.T) {
	f := fx(t)
	newer := f.TCBInfo()
	newer.TCBEvaluationDataNumber = 18
	newerQE := f.QEIdentity()
	newerQE.TCBEvaluationDataNumber = 18
	c18, _ := f.Collateral(newer, newerQE, false)
	c17, _ := f.Collateral(nil, nil, false)
	q := f.Quote(f.DefaultSpec())
	ctx := context.Background()
	v := mustNew(t, tdx.Options{Root: f.PKI.Root})
	if _, err := v.Verify(ctx, ev(q, c18), attest.Options{Now: f.Now}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, ev(q, c18), attest.Options{Now: f.Now}); err != nil {
		t.Fatalf("the same set again: %v", err)
	}
	_, err := v.Verify(ctx, ev(q, c17), attest.Options{Now: f.Now})
	var ae *attest.Error
	if !errors.Is(err, intel.ErrOlder) || !errors.As(err, &ae) || ae.Field != "collateral."+intel.FileTCBInfo {
		t.Fatalf("an older supplied set after a newer one: %v, want ErrOlder naming collateral.%s", err, intel.FileTCBInfo)
	}
}
