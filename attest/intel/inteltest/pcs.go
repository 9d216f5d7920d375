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
	Down atomic.Bool // answer 503 to everything
}

// NewPCS serves c until the test ends.
func NewPCS(t testing.TB, c *intel.Collateral) *PCS {
	p := &PCS{}
	p.cur.Store(c)
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

// Set replaces the collateral served.
func (p *PCS) Set(c *intel.Collateral) { p.cur.Store(c) }

// URL is the base URL to configure as PCSURL.
func (p *PCS) URL() string { return p.srv.URL }

// Getter reaches the server.
func (p *PCS) Getter() intel.Getter { return intel.HTTPGetter{Client: p.srv.Client()} }

func (p *PCS) serve(w http.ResponseWriter, r *http.Request) {
	if p.Down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	c := p.cur.Load()
	var body, chain []byte
	var header string
	path := r.URL.Path
	switch {
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
