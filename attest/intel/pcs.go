package intel

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/medicus-cloud/trust/attest/fetch"
)

// DefaultPCSURL is Intel's Provisioning Certification Service.
const DefaultPCSURL = "https://api.trustedservices.intel.com"

// DefaultRootCRLURL is where Intel publishes the SGX root CA CRL (PCS itself has no root CRL
// endpoint; a PCCS serves it at /sgx/certification/v4/rootcacrl).
const DefaultRootCRLURL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"

// Response header names of the issuer chains (URL-encoded PEM).
const (
	HeaderTCBInfoChain    = "TCB-Info-Issuer-Chain"
	HeaderQEIdentityChain = "SGX-Enclave-Identity-Issuer-Chain"
	HeaderPCKCRLChain     = "SGX-PCK-CRL-Issuer-Chain"
)

// Getter performs an HTTP GET. Implementations must honour ctx.
type Getter interface {
	Get(ctx context.Context, url string) (http.Header, []byte, error)
}

// HTTPGetter is a Getter over fetch.Client; the zero value uses a client with a 30-second
// timeout and makes one attempt. Responses other than 200 are errors (*fetch.StatusError);
// bodies are bounded. Attempts above 1 retry throttled or unavailable answers with backoff.
type HTTPGetter struct {
	Client *http.Client
	// Attempts is the number of tries; 0 means 1.
	Attempts int
	// Backoff is the first wait between tries, doubled each retry; 0 means 10 seconds.
	Backoff time.Duration
	// MaxBackoff caps one wait, including Retry-After; 0 means 2 minutes.
	MaxBackoff time.Duration
}

// Get implements Getter.
func (g HTTPGetter) Get(ctx context.Context, u string) (http.Header, []byte, error) {
	c := fetch.Client{HTTP: g.Client, Attempts: max(g.Attempts, 1), Backoff: g.Backoff, MaxBackoff: g.MaxBackoff, MaxBody: maxFile}
	return c.Get(ctx, u)
}

// FetchOptions say where collateral comes from. The zero value fetches TDX collateral for the
// platform CA from Intel's PCS over HTTPS.
type FetchOptions struct {
	// BaseURL is the PCS or PCCS base URL (scheme and host, optionally a path prefix); empty means
	// DefaultPCSURL.
	BaseURL string
	// RootCRLURL overrides where the root CA CRL comes from. Empty means DefaultRootCRLURL for
	// Intel's PCS and <BaseURL>/sgx/certification/v4/rootcacrl for a PCCS.
	RootCRLURL string
	// Getter performs the requests; nil means HTTPGetter{}.
	Getter Getter
	// CA is the PCK CA whose CRL to fetch: CAPlatform (default) or CAProcessor.
	CA string
	// SGX fetches SGX TCB info and QE identity instead of TDX ones.
	SGX bool
}

// ParseFMSPC checks an FMSPC (6 bytes of hex, either case) and returns it in lowercase.
func ParseFMSPC(s string) (string, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != 6 {
		return "", fmt.Errorf("fmspc %q is not 6 bytes of hex", s)
	}
	return hex.EncodeToString(b), nil
}

func (o FetchOptions) urls(fmspc string) (tcb, qe, pckcrl, rootcrl string, err error) {
	base := strings.TrimRight(o.BaseURL, "/")
	if base == "" {
		base = DefaultPCSURL
	}
	if u, perr := url.Parse(base); perr != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", "", "", "", fmt.Errorf("PCS URL %q is not an http(s) URL", o.BaseURL)
	}
	ca := o.CA
	if ca == "" {
		ca = CAPlatform
	}
	if ca != CAPlatform && ca != CAProcessor {
		return "", "", "", "", fmt.Errorf("PCK CA %q: want %s or %s", o.CA, CAPlatform, CAProcessor)
	}
	tee := "tdx"
	if o.SGX {
		tee = "sgx"
	}
	tcb = fmt.Sprintf("%s/%s/certification/v4/tcb?fmspc=%s", base, tee, fmspc)
	qe = fmt.Sprintf("%s/%s/certification/v4/qe/identity", base, tee)
	pckcrl = fmt.Sprintf("%s/sgx/certification/v4/pckcrl?ca=%s&encoding=der", base, ca)
	rootcrl = o.RootCRLURL
	if rootcrl == "" {
		if base == DefaultPCSURL {
			rootcrl = DefaultRootCRLURL
		} else {
			rootcrl = base + "/sgx/certification/v4/rootcacrl"
		}
	}
	return tcb, qe, pckcrl, rootcrl, nil
}

// FetchCollateral downloads the collateral for fmspc. It checks the shape of what it got (the
// bodies parse, the chains are PEM) but not signatures: Roots.VerifyCollateral does that.
func FetchCollateral(ctx context.Context, o FetchOptions, fmspc string) (*Collateral, error) {
	fm, err := ParseFMSPC(fmspc)
	if err != nil {
		return nil, err
	}
	tcbURL, qeURL, pckURL, rootURL, err := o.urls(fm)
	if err != nil {
		return nil, err
	}
	g := o.Getter
	if g == nil {
		g = HTTPGetter{}
	}
	c := &Collateral{}
	get := func(u, header string) ([]byte, []byte, error) {
		h, body, err := g.Get(ctx, u)
		if err != nil {
			return nil, nil, err
		}
		if header == "" {
			return body, nil, nil
		}
		chain, err := headerChain(h, header)
		if err != nil {
			return nil, nil, fmt.Errorf("GET %s: %w", u, err)
		}
		return body, chain, nil
	}
	if c.TCBInfo, c.TCBInfoChain, err = get(tcbURL, HeaderTCBInfoChain); err != nil {
		return nil, &FileError{FileTCBInfo, err}
	}
	if _, _, _, err := ParseTCBInfo(c.TCBInfo); err != nil {
		return nil, &FileError{FileTCBInfo, err}
	}
	if c.QEIdentity, c.QEIdentityChain, err = get(qeURL, HeaderQEIdentityChain); err != nil {
		return nil, &FileError{FileQEIdentity, err}
	}
	if _, _, _, err := ParseEnclaveIdentity(c.QEIdentity); err != nil {
		return nil, &FileError{FileQEIdentity, err}
	}
	var crl []byte
	if crl, c.PCKCRLChain, err = get(pckURL, HeaderPCKCRLChain); err != nil {
		return nil, &FileError{FilePCKCRL, err}
	}
	if c.PCKCRL, err = DecodeCRL(crl); err != nil {
		return nil, &FileError{FilePCKCRL, err}
	}
	if crl, _, err = get(rootURL, ""); err != nil {
		return nil, &FileError{FileRootCRL, err}
	}
	if c.RootCRL, err = DecodeCRL(crl); err != nil {
		return nil, &FileError{FileRootCRL, err}
	}
	return c, nil
}

func headerChain(h http.Header, name string) ([]byte, error) {
	v := h.Get(name)
	if v == "" {
		return nil, fmt.Errorf("no %s header", name)
	}
	pemText, err := url.QueryUnescape(v)
	if err != nil {
		return nil, fmt.Errorf("%s header is not URL-encoded: %w", name, err)
	}
	if _, err := ParsePEMChain([]byte(pemText)); err != nil {
		return nil, fmt.Errorf("%s header: %w", name, err)
	}
	return []byte(pemText), nil
}

// Fetch downloads the collateral for fmspc and writes the collateral directory layout into
// outDir: tcbinfo.json, tcbinfo_chain.pem, qeidentity.json, qeidentity_chain.pem, pckcrl.der,
// pckcrl_chain.pem and rootcrl.der.
func Fetch(ctx context.Context, o FetchOptions, fmspc, outDir string) error {
	c, err := FetchCollateral(ctx, o, fmspc)
	if err != nil {
		return err
	}
	return c.WriteDir(outDir)
}

// Source gets collateral for a platform, from a disk cache while it is valid, otherwise from
// PCS or a PCCS. It is what a verifier configured with a PCS URL uses.
type Source struct {
	Fetch FetchOptions
	// CacheDir holds one collateral directory per TEE, CA and FMSPC; empty disables caching.
	CacheDir string
	// Rate bounds outbound requests of this Source in requests per second, with Burst at once;
	// 0 means unlimited (fetches follow a verified PCK chain, so a forged quote cannot make
	// them). NegativeTTL remembers a failed request per URL; 0 means not at all (the online
	// state already spaces failed refreshes per platform). Set them before first use.
	Rate        float64
	Burst       int
	NegativeTTL time.Duration

	// guard shares one request per URL among concurrent lookups (two CAs or TEEs of one
	// platform ask for the same root CRL) and applies Rate and NegativeTTL.
	guard fetch.Guard[response]
	once  sync.Once
}

type response struct {
	h    http.Header
	body []byte
}

// guarded is a Getter that goes through a Source's guard.
type guarded struct {
	s    *Source
	next Getter
}

func (g guarded) Get(ctx context.Context, u string) (http.Header, []byte, error) {
	r, err := g.s.guard.Do(ctx, u, nil, nil, func(ctx context.Context) (response, error) {
		h, b, err := g.next.Get(ctx, u)
		return response{h, b}, err
	})
	return r.h, r.body, err
}

// Get returns collateral for fmspc and the PCK CA kind, valid at t as far as its issue and
// next-update dates go (signatures are for the caller to verify).
func (s *Source) Get(ctx context.Context, fmspc, ca string, t time.Time) (*Collateral, error) {
	fm, err := ParseFMSPC(fmspc)
	if err != nil {
		return nil, err
	}
	s.once.Do(func() {
		s.guard.Rate, s.guard.Burst, s.guard.NegativeTTL = s.Rate, s.Burst, s.NegativeTTL
	})
	o := s.Fetch
	o.CA = ca
	if o.Getter == nil {
		o.Getter = HTTPGetter{}
	}
	o.Getter = guarded{s: s, next: o.Getter}
	var dir string
	if s.CacheDir != "" {
		tee := "tdx"
		if o.SGX {
			tee = "sgx"
		}
		dir = filepath.Join(s.CacheDir, tee+"-"+ca+"-"+fm)
		if c, err := ReadDir(dir); err == nil && fresh(c, t) {
			return c, nil
		}
	}
	c, err := FetchCollateral(ctx, o, fm)
	if err != nil {
		return nil, err
	}
	if dir != "" {
		if err := c.WriteDir(dir); err != nil {
			return nil, fmt.Errorf("collateral cache: %w", err)
		}
	}
	return c, nil
}

// fresh reports whether every dated part of c is before its nextUpdate at t.
func fresh(c *Collateral, t time.Time) bool {
	info, _, _, err := ParseTCBInfo(c.TCBInfo)
	if err != nil || t.After(info.NextUpdate) {
		return false
	}
	qe, _, _, err := ParseEnclaveIdentity(c.QEIdentity)
	if err != nil || t.After(qe.NextUpdate) {
		return false
	}
	for _, b := range [][]byte{c.PCKCRL, c.RootCRL} {
		l, err := parseCRLDates(b)
		if err != nil || t.After(l) {
			return false
		}
	}
	return true
}

func parseCRLDates(b []byte) (time.Time, error) {
	l, err := parseCRL(b)
	if err != nil {
		return time.Time{}, err
	}
	if l.NextUpdate.IsZero() {
		return time.Time{}, errors.New("CRL has no nextUpdate")
	}
	return l.NextUpdate, nil
}
