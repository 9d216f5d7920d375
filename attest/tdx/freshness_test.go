package tdx_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/tdx"
)

// changingPCS is a fake PCS whose collateral a test replaces over its controlled clock, as
// Intel's does when it revokes a PCK or publishes a TCB recovery.
type changingPCS struct {
	srv  *httptest.Server
	cur  atomic.Pointer[intel.Collateral]
	down atomic.Bool
	hits atomic.Int64
}

func newChangingPCS(t *testing.T, c *intel.Collateral) *changingPCS {
	p := &changingPCS{}
	p.cur.Store(c)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		c := p.cur.Load()
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
	t.Cleanup(p.srv.Close)
	return p
}

func (p *changingPCS) verifier(t *testing.T, root tdx.Options, cache string, fr intel.Freshness) *tdx.Verifier {
	root.PCSURL, root.Getter, root.CacheDir, root.Freshness = p.srv.URL, intel.HTTPGetter{Client: p.srv.Client()}, cache, fr
	return mustNew(t, root)
}

var hourly = intel.Freshness{RefreshInterval: time.Hour, MaxAge: 6 * time.Hour}

// A PCK that Intel revokes is refused within one refresh interval, long before the cached
// collateral's nextUpdate (a month), and also by a verifier restarted on the same cache.
func TestRevokedPCKWithinRefreshInterval(t *testing.T) {
	f := fx(t)
	good, err := f.Collateral(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := f.Collateral(nil, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	pcs := newChangingPCS(t, good)
	cache := t.TempDir()
	v := pcs.verifier(t, tdx.Options{Root: f.PKI.Root}, cache, hourly)
	q := f.Quote(f.DefaultSpec())
	ctx := context.Background()
	at := func(v *tdx.Verifier, d time.Duration) error {
		_, err := v.Verify(ctx, ev(q, nil), attest.Options{Now: f.Now.Add(d)})
		return err
	}
	if err := at(v, 0); err != nil {
		t.Fatal(err)
	}
	pcs.cur.Store(revoked)
	if err := at(v, 59*time.Minute); err != nil {
		t.Fatalf("within the refresh interval the last fetched set serves: %v", err)
	}
	if err := at(v, 61*time.Minute); !errors.Is(err, attest.ErrNotAuthentic) {
		t.Fatalf("after the refresh interval: %v, want the revoked PCK refused", err)
	}

	// A restart on a cache fetched before the revocation refetches once its fetch is older
	// than the interval.
	pcs.cur.Store(good)
	cache2 := t.TempDir()
	if err := at(pcs.verifier(t, tdx.Options{Root: f.PKI.Root}, cache2, hourly), 0); err != nil {
		t.Fatal(err)
	}
	pcs.cur.Store(revoked)
	if err := at(pcs.verifier(t, tdx.Options{Root: f.PKI.Root}, cache2, hourly), 30*time.Minute); err != nil {
		t.Fatalf("restarted within the interval: %v", err)
	}
	if err := at(pcs.verifier(t, tdx.Options{Root: f.PKI.Root}, cache2, hourly), 61*time.Minute); !errors.Is(err, attest.ErrNotAuthentic) {
		t.Fatalf("restarted after the interval: %v, want the revoked PCK refused", err)
	}
}

// A failed refresh keeps the last good set until MaxAge, then fails closed naming the platform.
func TestFailedRefreshMaxAge(t *testing.T) {
	f := fx(t)
	good, _ := f.Collateral(nil, nil, false)
	pcs := newChangingPCS(t, good)
	q := f.Quote(f.DefaultSpec())
	ctx := context.Background()
	for _, restart := range []bool{false, true} {
		pcs.down.Store(false)
		cache := t.TempDir()
		v := pcs.verifier(t, tdx.Options{Root: f.PKI.Root}, cache, hourly)
		if _, err := v.Verify(ctx, ev(q, nil), attest.Options{Now: f.Now}); err != nil {
			t.Fatal(err)
		}
		pcs.down.Store(true)
		if restart {
			v = pcs.verifier(t, tdx.Options{Root: f.PKI.Root}, cache, hourly)
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
	pcs := newChangingPCS(t, c18)
	q := f.Quote(f.DefaultSpec())
	ctx := context.Background()
	v := pcs.verifier(t, tdx.Options{Root: f.PKI.Root}, t.TempDir(), hourly)
	if _, err := v.Verify(ctx, ev(q, nil), attest.Options{Now: f.Now}); err != nil {
		t.Fatal(err)
	}
	pcs.cur.Store(c17) // a stale PCCS serves a pre-recovery set
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
