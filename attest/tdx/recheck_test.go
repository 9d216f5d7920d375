package tdx_test

import (
	"context"
	"encoding/hex"
	"errors"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure"
	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/intel/inteltest"
	"github.com/medicus-cloud/trust/attest/tdx"
	"github.com/medicus-cloud/trust/attest/tdx/tdxtest"
)

// TestRecheckOutstandingPCK: Intel revokes a PCK; the scheduled refresh fetches the new CRL
// without any new quote, and the claims an outstanding token carries are refused at its next
// release.
func TestRecheckOutstandingPCK(t *testing.T) {
	f := fx(t)
	good, revoked := collateralPair(t, f)
	pcs := newPCS(t, good)
	v := verifierAt(t, pcs, tdx.Options{Root: f.PKI.Root}, t.TempDir(), hourly)
	ctx := context.Background()
	c, err := v.Verify(ctx, ev(f.Quote(f.DefaultSpec()), nil), attest.Options{Now: f.Now})
	if err != nil {
		t.Fatal(err)
	}
	if c.Platform[intel.ClaimPCKSerial] != f.PCK.SerialNumber.Text(16) {
		t.Fatalf("claims carry PCK serial %q", c.Platform[intel.ClaimPCKSerial])
	}
	if err := v.RecheckClaims(c, f.Now); err != nil {
		t.Fatal(err)
	}
	pcs.Set(revoked)
	v.RefreshCollateral(ctx, f.Now.Add(30*time.Minute)) // not due
	if err := v.RecheckClaims(c, f.Now.Add(30*time.Minute)); err != nil {
		t.Fatalf("before the refresh is due: %v", err)
	}
	// The Azure TDX scheme wraps this verifier: its refresh, ages and recheck are this one's.
	az := azure.NewTDX(v)
	azc := *c
	azc.TEE = azure.TDX
	az.RefreshCollateral(ctx, f.Now.Add(61*time.Minute))
	if ages := az.CollateralAges(); len(ages) == 0 || ages[0].TEE != azure.TDX {
		t.Errorf("azure-tdx collateral ages %+v", ages)
	}
	var aze *attest.Error
	if err := az.RecheckClaims(&azc, f.Now.Add(61*time.Minute)); !errors.As(err, &aze) || aze.Field != "quote.pck_chain.revoked" {
		t.Errorf("azure-tdx claims after the refresh: %v, want the revoked PCK refused", err)
	}
	err = v.RecheckClaims(c, f.Now.Add(61*time.Minute))
	var ae *attest.Error
	if !errors.As(err, &ae) || ae.Field != "quote.pck_chain.revoked" {
		t.Fatalf("after the refresh: %v, want the revoked PCK refused", err)
	}
	// Past the maximum age without a good refresh, releases fail closed.
	pcs.Down.Store(true)
	v2 := verifierAt(t, pcs, tdx.Options{Root: f.PKI.Root}, t.TempDir(), hourly)
	pcs.Down.Store(false)
	pcs.Set(good)
	if _, err := v2.Verify(ctx, ev(f.Quote(f.DefaultSpec()), nil), attest.Options{Now: f.Now}); err != nil {
		t.Fatal(err)
	}
	pcs.Down.Store(true)
	v2.RefreshCollateral(ctx, f.Now.Add(3*time.Hour))
	if err := v2.RecheckClaims(c, f.Now.Add(3*time.Hour)); err != nil {
		t.Fatalf("within the maximum age: %v", err)
	}
	if err := v2.RecheckClaims(c, f.Now.Add(7*time.Hour)); !errors.Is(err, attest.ErrUnavailable) {
		t.Fatalf("past the maximum age: %v", err)
	}
}

// TestRecheckOfflinePCK: with offline collateral (a directory, or an imported bundle's
// platform), a PCK CRL reloaded since the token was issued that revokes its PCK refuses the
// token at its next release, as the online CRL does.
func TestRecheckOfflinePCK(t *testing.T) {
	f := fx(t)
	good, revoked := collateralPair(t, f)
	ctx := context.Background()
	t.Run("directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := good.WriteDir(dir); err != nil {
			t.Fatal(err)
		}
		v := mustNew(t, tdx.Options{Root: f.PKI.Root, CollateralDir: dir})
		c, err := v.Verify(ctx, ev(f.Quote(f.DefaultSpec()), nil), attest.Options{Now: f.Now})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.RecheckClaims(c, f.Now); err != nil {
			t.Fatal(err)
		}
		if err := revoked.WriteDir(dir); err != nil {
			t.Fatal(err)
		}
		if err := v.ReloadCollateral(); err != nil {
			t.Fatal(err)
		}
		var ae *attest.Error
		if err := v.RecheckClaims(c, f.Now); !errors.As(err, &ae) || ae.Field != "quote.pck_chain.revoked" {
			t.Fatalf("after the reload: %v, want the revoked PCK refused", err)
		}
	})
	t.Run("bundle", func(t *testing.T) {
		bundle := t.TempDir()
		dir := filepath.Join(bundle, "intel", "tdx", hex.EncodeToString(tdxtest.FMSPC[:]))
		if err := good.WriteDir(dir); err != nil {
			t.Fatal(err)
		}
		v := mustNew(t, tdx.Options{Root: f.PKI.Root})
		if err := v.UseBundle(true, bundle); err != nil {
			t.Fatal(err)
		}
		c, err := v.Verify(ctx, ev(f.Quote(f.DefaultSpec()), nil), attest.Options{Now: f.Now})
		if err != nil || c.TCBStatus == "unknown" {
			t.Fatalf("%v, status %q", err, c.TCBStatus)
		}
		if err := revoked.WriteDir(dir); err != nil {
			t.Fatal(err)
		}
		if err := v.LoadBundle(bundle); err != nil {
			t.Fatal(err)
		}
		var ae *attest.Error
		if err := v.RecheckClaims(c, f.Now); !errors.As(err, &ae) || ae.Field != "quote.pck_chain.revoked" {
			t.Fatalf("after the reload: %v, want the revoked PCK refused", err)
		}
	})
}

// TestBundleNotOlder: a collateral bundle imported at run time must not take back what the
// platform's loaded set already established: a TCB recovery (a higher tcbEvaluationDataNumber)
// or a newer PCK CRL that revokes the PCK. Intel's older set still verifies within its 30-day
// validity, so only the order refuses it.
func TestBundleNotOlder(t *testing.T) {
	f := fx(t)
	good, err := f.Collateral(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	recovered, err := f.Recovered(false)
	if err != nil {
		t.Fatal(err)
	}
	newerCRL, err := f.PKI.Collateral(inteltest.CollateralSpec{TCBInfo: f.TCBInfo(), QEIdentity: f.QEIdentity(),
		ThisUpdate: f.Now.Add(-time.Hour), NextUpdate: f.Now.AddDate(0, 1, 0), RevokedPCKs: []*big.Int{f.PCK.SerialNumber}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		first     *intel.Collateral
		wantField string
	}{
		{"tcb recovery", recovered, ""},
		{"pck crl", newerCRL, "quote.pck_chain.revoked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle := t.TempDir()
			dir := filepath.Join(bundle, "intel", "tdx", hex.EncodeToString(tdxtest.FMSPC[:]))
			if err := tc.first.WriteDir(dir); err != nil {
				t.Fatal(err)
			}
			v := mustNew(t, tdx.Options{Root: f.PKI.Root, AllowOutOfDate: true})
			if err := v.UseBundle(true, bundle); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			check := func(stage string) {
				t.Helper()
				c, err := v.Verify(ctx, ev(f.Quote(f.DefaultSpec()), nil), attest.Options{Now: f.Now})
				if tc.wantField != "" {
					var ae *attest.Error
					if !errors.As(err, &ae) || ae.Field != tc.wantField {
						t.Fatalf("%s: %v, want refused at %s", stage, err, tc.wantField)
					}
					return
				}
				if err != nil || c.TCBStatus != string(intel.OutOfDate) {
					t.Fatalf("%s: %v, status %q, want OutOfDate", stage, err, c.TCBStatus)
				}
			}
			check("first bundle")
			if err := good.WriteDir(dir); err != nil {
				t.Fatal(err)
			}
			if err := v.LoadBundle(bundle); !errors.Is(err, intel.ErrOlder) {
				t.Fatalf("loading the older set: %v, want ErrOlder", err)
			}
			check("after the older bundle")
		})
	}
}
