package inteltest

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/medicus-cloud/trust/attest/intel"
)

// PCS is a fake Intel PCS on loopback serving one collateral set, TDX and SGX alike, that a
// test replaces over its controlled clock as Intel does when it revokes a PCK or publishes a
// TCB recovery.
type PCS struct {
	srv  *httptest.Server
	cur  atomic.Pointer[intel.Collateral]
	want atomic.Pointer[expect]
	Down atomic.Bool  // answer 503 to everything
	Hits atomic.Int64 // requests received, answered or not
}

type expect struct{ fmspc, ca string }

// NewPCS serves c until the test ends.
func NewPCS(t testing.TB, c *intel.Collateral) *PCS {
	p := &PCS{}
	p.cur.Store(c)
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

// Expect makes the server answer 404, as Intel's does for a platform it does not know, to a
// TCB info request for another FMSPC and to a PCK CRL request for another CA: a test then sees
// the verifier ask for the right ones. It returns p.
func (p *PCS) Expect(fmspc, ca string) *PCS {
	p.want.Store(&expect{fmspc, ca})
	return p
}

// Set replaces the collateral served.
func (p *PCS) Set(c *intel.Collateral) { p.cur.Store(c) }

// URL is the base URL to configure as PCSURL.
func (p *PCS) URL() string { return p.srv.URL }

// Getter reaches the server.
func (p *PCS) Getter() intel.Getter { return intel.HTTPGetter{Client: p.srv.Client()} }

func (p *PCS) serve(w http.ResponseWriter, r *http.Request) {
	p.Hits.Add(1)
	if p.Down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	c := p.cur.Load()
	var body, chain []byte
	var header string
	path := r.URL.Path
	want := p.want.Load()
	q := r.URL.Query()
	switch {
	case want != nil && strings.HasSuffix(path, "/certification/v4/tcb") && !strings.EqualFold(q.Get("fmspc"), want.fmspc),
		want != nil && path == "/sgx/certification/v4/pckcrl" && q.Get("ca") != want.ca:
		http.NotFound(w, r)
		return
	case strings.HasSuffix(path, "/certification/v4/tcb"):
		body, chain, header = c.TCBInfo, c.TCBInfoChain, intel.HeaderTCBInfoChain
	case strings.HasSuffix(path, "/certification/v4/qe/identity"):
		body, chain, header = c.QEIdentity, c.QEIdentityChain, intel.HeaderQEIdentityChain
	case path == "/sgx/certification/v4/pckcrl":
		body, chain, header = c.PCKCRL, c.PCKCRLChain, intel.HeaderPCKCRLChain
	case path == "/sgx/certification/v4/rootcacrl":
		body = c.RootCRL
	default:
		http.NotFound(w, r)
		return
	}
	if header != "" {
		w.Header().Set(header, url.QueryEscape(string(chain)))
	}
	w.Write(body)
}
