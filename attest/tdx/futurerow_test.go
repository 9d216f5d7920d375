package tdx_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/tdx"
)

// TestStoredSetFutureFetchTime: a stored set (the disk cache's fetched-at, or a shared
// trust_collateral row) whose fetch time lies in the future - a replica whose clock runs ahead,
// a tampered row - must not count as fetched just now: otherwise no refresh reaches PCS until
// then, the maximum age is never reached, and a PCK Intel revoked meanwhile stays accepted.
func TestStoredSetFutureFetchTime(t *testing.T) {
	f := fx(t)
	good, revoked := collateralPair(t, f)
	pcs := newPCS(t, good)
	cache := t.TempDir()
	q := f.Quote(f.DefaultSpec())
	ctx := context.Background()
	if _, err := verifierAt(t, pcs, tdx.Options{Root: f.PKI.Root}, cache, hourly).Verify(ctx, ev(q, nil), attest.Options{Now: f.Now}); err != nil {
		t.Fatal(err)
	}
	at := filepath.Join(cache, "tdx-platform-90c06f000000", "fetched-at")
	if _, err := os.Stat(at); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(at, []byte(f.Now.AddDate(0, 0, 20).Format(time.RFC3339Nano)), 0o644); err != nil {
		t.Fatal(err)
	}
	pcs.Set(revoked)
	v := verifierAt(t, pcs, tdx.Options{Root: f.PKI.Root}, cache, hourly)
	if _, err := v.Verify(ctx, ev(q, nil), attest.Options{Now: f.Now.Add(2 * time.Hour)}); !errors.Is(err, attest.ErrNotAuthentic) {
		t.Fatalf("a stored set with a future fetch time: %v, want it fetched again and the revoked PCK refused", err)
	}
}
