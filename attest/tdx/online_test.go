package tdx_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/tdx"
)

func TestOnlineCollateral(t *testing.T) {
	f := fx(t)
	c, err := f.Collateral(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	pcs := newPCS(t, c) // a PCCS answers at the PCS's paths
	ctx := context.Background()
	q := f.Quote(f.DefaultSpec())
	newV := func(cache string) *tdx.Verifier {
		return mustNew(t, tdx.Options{Root: f.PKI.Root, PCSURL: pcs.URL(), Getter: pcs.Getter(), CacheDir: cache})
	}

	var misses, cacheHits atomic.Int32
	v := mustNew(t, tdx.Options{Root: f.PKI.Root, PCSURL: pcs.URL(), Getter: pcs.Getter(), CacheDir: t.TempDir(),
		CacheObserver: func(hit bool) {
			if hit {
				cacheHits.Add(1)
			} else {
				misses.Add(1)
			}
		}})
	for range 3 {
		got, err := v.Verify(ctx, ev(q, nil), attest.Options{Now: f.Now})
		if err != nil || got.TCBStatus != "UpToDate" {
			t.Fatalf("%v %v", got, err)
		}
	}
	if n := pcs.Hits.Load(); n != 4 {
		t.Errorf("%d PCCS requests for three verifications, want 4 (one fetch)", n)
	}
	if misses.Load() != 1 || cacheHits.Load() != 2 {
		t.Errorf("cache observer saw %d misses and %d hits, want 1 and 2", misses.Load(), cacheHits.Load())
	}

	// A second verifier with the same cache directory needs no network.
	cache := t.TempDir()
	if _, err := newV(cache).Verify(ctx, ev(q, nil), attest.Options{Now: f.Now}); err != nil {
		t.Fatal(err)
	}
	pcs.Down.Store(true)
	if _, err := newV(cache).Verify(ctx, ev(q, nil), attest.Options{Now: f.Now}); err != nil {
		t.Fatalf("from the disk cache: %v", err)
	}

	// With PCCS down and nothing cached, nothing is released: Unavailable, not "unknown".
	_, err = newV("").Verify(ctx, ev(q, nil), attest.Options{Now: f.Now})
	wantErr(t, err, attest.ErrUnavailable, "collateral")
}
