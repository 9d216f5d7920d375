package tdx_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/tdx"
)

// fakePCCS serves the fixture's collateral at a PCCS's paths, on 127.0.0.1.
func fakePCCS(t *testing.T, c *intel.Collateral, up *atomic.Bool) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var body, chain []byte
		var header string
		switch {
		case r.URL.Path == "/tdx/certification/v4/tcb" && strings.EqualFold(r.URL.Query().Get("fmspc"), "90c06f000000"):
			body, chain, header = c.TCBInfo, c.TCBInfoChain, intel.HeaderTCBInfoChain
		case r.URL.Path == "/tdx/certification/v4/qe/identity":
			body, chain, header = c.QEIdentity, c.QEIdentityChain, intel.HeaderQEIdentityChain
		case r.URL.Path == "/sgx/certification/v4/pckcrl" && r.URL.Query().Get("ca") == "platform":
			body, chain, header = c.PCKCRL, c.PCKCRLChain, intel.HeaderPCKCRLChain
		case r.URL.Path == "/sgx/certification/v4/rootcacrl":
			body = c.RootCRL
		default:
			http.NotFound(w, r)
			return
		}
		if header != "" {
			w.Header().Set(header, url.QueryEscape(string(chain)))
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestOnlineCollateral(t *testing.T) {
	f := fx(t)
	c, err := f.Collateral(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	var up atomic.Bool
	up.Store(true)
	srv, hits := fakePCCS(t, c, &up)
	ctx := context.Background()
	q := f.Quote(f.DefaultSpec())
	newV := func(cache string) *tdx.Verifier {
		return mustNew(t, tdx.Options{Root: f.PKI.Root, PCSURL: srv.URL, Getter: intel.HTTPGetter{Client: srv.Client()}, CacheDir: cache})
	}

	var misses, cacheHits atomic.Int32
	v := mustNew(t, tdx.Options{Root: f.PKI.Root, PCSURL: srv.URL, Getter: intel.HTTPGetter{Client: srv.Client()}, CacheDir: t.TempDir(),
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
	if n := hits.Load(); n != 4 {
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
	up.Store(false)
	if _, err := newV(cache).Verify(ctx, ev(q, nil), attest.Options{Now: f.Now}); err != nil {
		t.Fatalf("from the disk cache: %v", err)
	}

	// With PCCS down and nothing cached, nothing is released: Unavailable, not "unknown".
	_, err = newV("").Verify(ctx, ev(q, nil), attest.Options{Now: f.Now})
	wantErr(t, err, attest.ErrUnavailable, "collateral")
}
