package sgx

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/sgx/sgxtest"
)

var (
	sharedOnce sync.Once
	sharedPKI  *sgxtest.Platform
	fixtureNow = sgxtest.Now
)

func testPKI(t testing.TB) *sgxtest.Platform {
	sharedOnce.Do(func() { sharedPKI = sgxtest.NewPlatform(t) })
	return sharedPKI
}

var testReportData = func() (rd [64]byte) { copy(rd[:], "medicus sgx test report data"); return }()

const testAuthData = "qe auth data 0123456789abcdef"

func goodQuote(t testing.TB, version uint16) []byte {
	return testPKI(t).Quote(t, sgxtest.DefaultEnclave(), testReportData, sgxtest.QuoteOptions{Version: version, AuthData: []byte(testAuthData)})
}

func sgxEvidence(q []byte) *attest.Evidence { return &attest.Evidence{TEE: attest.SGX, Report: q} }

func wantErr(t *testing.T, err error, kind error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("verified, want %v at %s", kind, field)
	}
	var ae *attest.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v is not an *attest.Error", err)
	}
	if !errors.Is(err, kind) || ae.Field != field {
		t.Fatalf("error %q: kind %v field %q, want %v field %q", err, ae.Kind, ae.Field, kind, field)
	}
}

func TestVerifyGood(t *testing.T) {
	p := testPKI(t)
	for _, version := range []uint16{3, 4, 5} {
		t.Run("v"+string(rune('0'+version)), func(t *testing.T) {
			v, err := New(Options{Root: p.Root})
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(context.Background(), sgxEvidence(goodQuote(t, version)), attest.Options{Now: fixtureNow})
			if err != nil {
				t.Fatal(err)
			}
			b := sgxtest.DefaultEnclave()
			checks := []struct {
				name      string
				got, want any
			}{
				{"tee", c.TEE, attest.SGX},
				{"measurement", c.Measurement.String(), hex.EncodeToString(b.MRENCLAVE[:])},
				{"mrsigner", c.Measurements["mrsigner"].String(), hex.EncodeToString(b.MRSIGNER[:])},
				{"isv_svn", c.TCB["isv_svn"], uint64(3)},
				{"pce_svn", c.TCB["pce_svn"], uint64(sgxtest.PCESVN)},
				{"qe_svn", c.TCB["qe_svn"], uint64(8)},
				{"isv_prod_id", c.Attributes["isv_prod_id"], uint64(7)},
				{"attributes_flags", c.Attributes["attributes_flags"], uint64(5)},
				{"xfrm", c.Attributes["xfrm"], uint64(3)},
				{"debug", c.Debug, false},
				{"platform_smt_enabled", c.PlatformSMTEnabled, attest.TriTrue},
				{"report_data", string(bytes.TrimRight(c.ReportData, "\x00")), "medicus sgx test report data"},
				{"tcb_status", c.TCBStatus, "unknown"},
				{"fmspc", c.Platform["fmspc"], "00906ea10000"},
				{"signer", c.Platform["signer"], "pck"},
				{"pck_ca", c.Platform["pck_ca"], "platform"},
				{"quote_version", c.Platform["quote_version"], string(rune('0' + version))},
			}
			for _, ch := range checks {
				if ch.got != ch.want {
					t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
				}
			}
		})
	}
}

func TestVerifyTCBStatus(t *testing.T) {
	p := testPKI(t)
	q := goodQuote(t, 3)
	tests := []struct {
		name        string
		coll        sgxtest.CollateralOptions
		allowOld    bool
		wantStatus  string
		wantAdv     string
		wantKind    error
		wantField   string
		wantMessage string
	}{
		{name: "up to date", wantStatus: "UpToDate"},
		{name: "sw hardening", coll: sgxtest.CollateralOptions{PlatformStatus: intel.SWHardeningNeeded, Advisories: []string{"INTEL-SA-00615", "INTEL-SA-00334"}}, wantStatus: "SWHardeningNeeded", wantAdv: "INTEL-SA-00334,INTEL-SA-00615"},
		{name: "platform out of date", coll: sgxtest.CollateralOptions{PlatformStatus: intel.OutOfDate, Advisories: []string{"INTEL-SA-00837"}}, wantKind: attest.ErrNotAuthentic, wantField: "tcb_status", wantMessage: "TCB status is OutOfDate (advisories INTEL-SA-00837)"},
		{name: "platform out of date allowed", coll: sgxtest.CollateralOptions{PlatformStatus: intel.OutOfDate, Advisories: []string{"INTEL-SA-00837"}}, allowOld: true, wantStatus: "OutOfDate", wantAdv: "INTEL-SA-00837"},
		{name: "qe out of date", coll: sgxtest.CollateralOptions{QEStatus: intel.OutOfDate}, wantKind: attest.ErrNotAuthentic, wantField: "tcb_status", wantMessage: "TCB status is OutOfDate"},
		{name: "configuration needed", coll: sgxtest.CollateralOptions{PlatformStatus: intel.ConfigurationNeeded}, wantStatus: "ConfigurationNeeded"},
		{name: "revoked tcb", coll: sgxtest.CollateralOptions{PlatformStatus: intel.Revoked}, allowOld: true, wantKind: attest.ErrNotAuthentic, wantField: "tcb_status"},
		{name: "revoked pck", coll: sgxtest.CollateralOptions{RevokePCK: true}, wantKind: attest.ErrNotAuthentic, wantField: "quote.pck_chain.revoked"},
		{name: "other fmspc", coll: sgxtest.CollateralOptions{FMSPC: "00A06F000000"}, wantKind: attest.ErrNotAuthentic, wantField: "collateral.tcbinfo.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := p.Collateral(t, tt.coll)
			// Both ways in: collateral carried by the evidence, and a collateral directory.
			dir := t.TempDir()
			for name, b := range files {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, via := range []string{"evidence", "dir"} {
				o := Options{Root: p.Root, AllowOutOfDate: tt.allowOld}
				ev := sgxEvidence(q)
				if via == "dir" {
					o.CollateralDir = dir
				} else {
					ev.Collateral = files
				}
				v, err := New(o)
				if err != nil {
					t.Fatal(err)
				}
				c, err := v.Verify(context.Background(), ev, attest.Options{Now: fixtureNow})
				if tt.wantKind != nil {
					if via == "dir" && tt.coll.FMSPC != "" {
						// A directory for another platform is not this platform's collateral.
						wantErr(t, err, attest.ErrUnavailable, "collateral.tcbinfo.json")
						continue
					}
					wantErr(t, err, tt.wantKind, tt.wantField)
					if !strings.Contains(err.Error(), tt.wantMessage) {
						t.Errorf("error %q does not say %q", err, tt.wantMessage)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", via, err)
				}
				if c.TCBStatus != tt.wantStatus || strings.Join(c.Advisories, ",") != tt.wantAdv {
					t.Errorf("%s: status %q advisories %v, want %q %q", via, c.TCBStatus, c.Advisories, tt.wantStatus, tt.wantAdv)
				}
			}
		})
	}
}

func TestVerifyCollateralExpired(t *testing.T) {
	p := testPKI(t)
	v, _ := New(Options{Root: p.Root})
	ev := sgxEvidence(goodQuote(t, 4))
	ev.Collateral = p.Collateral(t, sgxtest.CollateralOptions{})
	_, err := v.Verify(context.Background(), ev, attest.Options{Now: fixtureNow.AddDate(0, 2, 0)})
	if !errors.Is(err, attest.ErrNotAuthentic) || !strings.Contains(err.Error(), "collateral.") {
		t.Fatalf("expired collateral: %v", err)
	}
}

func TestRequireCollateral(t *testing.T) {
	p := testPKI(t)
	v, _ := New(Options{Root: p.Root, RequireCollateral: true})
	_, err := v.Verify(context.Background(), sgxEvidence(goodQuote(t, 3)), attest.Options{Now: fixtureNow})
	wantErr(t, err, attest.ErrUnavailable, "collateral")
}

func TestDebugEnclave(t *testing.T) {
	p := testPKI(t)
	e := sgxtest.DefaultEnclave()
	e.Flags |= AttributeDebug
	q := p.Quote(t, e, testReportData, sgxtest.QuoteOptions{})

	// Issue 14 item 9: authentic evidence of a debug enclave verifies and says so; refusing
	// it is trustd's baseline, not verification's.
	v, _ := New(Options{Root: p.Root})
	c, err := v.Verify(context.Background(), sgxEvidence(q), attest.Options{Now: fixtureNow})
	if err != nil {
		t.Fatalf("debug enclave refused by verification: %v", err)
	}
	if !c.Debug || c.Attributes["attributes_flags"]&AttributeDebug == 0 {
		t.Fatalf("debug enclave reported Debug=%v flags=%#x", c.Debug, c.Attributes["attributes_flags"])
	}
}

func TestOtherRoot(t *testing.T) {
	other := sgxtest.NewPlatform(t)
	q := other.Quote(t, sgxtest.DefaultEnclave(), testReportData, sgxtest.QuoteOptions{})
	for name, o := range map[string]Options{"test root": {Root: testPKI(t).Root}, "intel root": {}} {
		t.Run(name, func(t *testing.T) {
			v, _ := New(o)
			_, err := v.Verify(context.Background(), sgxEvidence(q), attest.Options{Now: fixtureNow})
			wantErr(t, err, attest.ErrNotAuthentic, "quote.pck_chain")
		})
	}
}

func TestExpiredChain(t *testing.T) {
	p := testPKI(t)
	v, _ := New(Options{Root: p.Root})
	q := goodQuote(t, 3)
	for _, at := range []time.Time{time.Date(2034, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)} {
		_, err := v.Verify(context.Background(), sgxEvidence(q), attest.Options{Now: at})
		wantErr(t, err, attest.ErrNotAuthentic, "quote.pck_chain")
	}
	// The chain is cached now; a cached chain is still checked against the time.
	if _, err := v.Verify(context.Background(), sgxEvidence(q), attest.Options{Now: fixtureNow}); err != nil {
		t.Fatal(err)
	}
	_, err := v.Verify(context.Background(), sgxEvidence(q), attest.Options{Now: time.Date(2034, 1, 1, 0, 0, 0, 0, time.UTC)})
	wantErr(t, err, attest.ErrNotAuthentic, "quote.pck_chain")
}

// offsets in a v3 quote built by goodQuote.
const (
	offBody      = headerSize
	offSigData   = headerSize + ReportBodySize + 4
	offAK        = offSigData + 64
	offQEReport  = offSigData + 128
	offQESig     = offQEReport + ReportBodySize
	offAuthData  = offQESig + 64 + 2
	offCertChain = offAuthData + len(testAuthData) + 6
)

func TestTampered(t *testing.T) {
	p := testPKI(t)
	good := goodQuote(t, 3)
	tests := []struct {
		name  string
		at    int
		kind  error
		field string
	}{
		{"header user data", 30, attest.ErrNotAuthentic, "quote.signature"},
		{"body mrenclave", offBody + 70, attest.ErrNotAuthentic, "quote.signature"},
		{"body report data", offBody + 330, attest.ErrNotAuthentic, "quote.signature"},
		{"body debug bit", offBody + 48, attest.ErrNotAuthentic, "quote.signature"},
		{"signature", offSigData + 5, attest.ErrNotAuthentic, "quote.signature"},
		{"attestation key", offAK + 10, attest.ErrNotAuthentic, "quote.attestation_key"},
		{"qe report", offQEReport + 100, attest.ErrNotAuthentic, "quote.qe_report_signature"},
		{"qe report signature", offQESig + 3, attest.ErrNotAuthentic, "quote.qe_report_signature"},
		{"qe auth data", offAuthData + 1, attest.ErrNotAuthentic, "quote.qe_report.report_data"},
		{"pck chain header", offCertChain + 2, attest.ErrNotAuthentic, "quote.pck_chain"},
		{"pck chain body", offCertChain + 200, attest.ErrNotAuthentic, "quote.pck_chain"},
		{"version", 0, attest.ErrMalformed, "quote.header.version"},
		{"key type", 2, attest.ErrMalformed, "quote.header.attestation_key_type"},
		{"tee type", 4, attest.ErrMalformed, "quote.header.tee_type"},
		{"vendor", 12, attest.ErrMalformed, "quote.header.qe_vendor_id"},
		{"sig data len", offSigData - 2, attest.ErrMalformed, "quote.signature_data_len"},
		{"auth data len", offAuthData - 1, attest.ErrMalformed, "quote.qe_auth_data"},
		{"cert type", offCertChain - 6, attest.ErrMalformed, "quote.pck_certification_data.type"},
		{"cert size", offCertChain - 2, attest.ErrMalformed, "quote.pck_certification_data.size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := bytes.Clone(good)
			q[tt.at] ^= 0x40
			v, _ := New(Options{Root: p.Root})
			_, err := v.Verify(context.Background(), sgxEvidence(q), attest.Options{Now: fixtureNow})
			if tt.field == "quote.attestation_key" && errors.Is(err, attest.ErrNotAuthentic) {
				// A flipped coordinate is almost never on the curve; if it is, the signature fails.
				var ae *attest.Error
				if errors.As(err, &ae) && (ae.Field == "quote.attestation_key" || ae.Field == "quote.signature") {
					return
				}
			}
			wantErr(t, err, tt.kind, tt.field)
		})
	}
}

func TestTruncatedAndPadded(t *testing.T) {
	p := testPKI(t)
	v, _ := New(Options{Root: p.Root})
	for _, version := range []uint16{3, 4, 5} {
		good := goodQuote(t, version)
		for n := 0; n < len(good); n++ {
			_, err := v.Verify(context.Background(), sgxEvidence(good[:n]), attest.Options{Now: fixtureNow})
			if !errors.Is(err, attest.ErrMalformed) {
				t.Fatalf("v%d truncated to %d bytes: %v, want malformed", version, n, err)
			}
		}
		if _, err := v.Verify(context.Background(), sgxEvidence(append(bytes.Clone(good), 0, 0, 0, 0)), attest.Options{Now: fixtureNow}); err != nil {
			t.Errorf("v%d with zero padding: %v", version, err)
		}
		_, err := v.Verify(context.Background(), sgxEvidence(make([]byte, MaxQuoteSize+1)), attest.Options{Now: fixtureNow})
		wantErr(t, err, attest.ErrMalformed, "quote")
	}
}

func TestWrongEvidence(t *testing.T) {
	v, _ := New(Options{})
	_, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TDX, Report: goodQuote(t, 3)}, attest.Options{Now: fixtureNow})
	wantErr(t, err, attest.ErrMalformed, "evidence.tee")
	_, err = v.Verify(context.Background(), nil, attest.Options{})
	wantErr(t, err, attest.ErrMalformed, "evidence.tee")

	// A v5 quote with a TD body.
	q := goodQuote(t, 5)
	binary.LittleEndian.PutUint16(q[headerSize:], 2)
	_, err = v.Verify(context.Background(), sgxEvidence(q), attest.Options{Now: fixtureNow})
	wantErr(t, err, attest.ErrMalformed, "quote.body_type")
}

func TestBadCollateralDir(t *testing.T) {
	if _, err := New(Options{CollateralDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), intel.FileTCBInfo) {
		t.Fatalf("empty collateral directory: %v", err)
	}
}

// One Verifier serves trustd's concurrent requests: caches are shared (run with -race).
func TestConcurrentVerify(t *testing.T) {
	p := testPKI(t)
	dir := t.TempDir()
	for name, b := range p.Collateral(t, sgxtest.CollateralOptions{}) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v, err := New(Options{Root: p.Root, CollateralDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	quotes := [][]byte{goodQuote(t, 3), goodQuote(t, 4), goodQuote(t, 5)}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				c, err := v.Verify(context.Background(), sgxEvidence(quotes[(i+j)%3]), attest.Options{Now: fixtureNow})
				if err != nil || c.TCBStatus != "UpToDate" {
					t.Errorf("concurrent verify: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// Without collateral the QE is still pinned to Intel's; with collateral the QE identity decides.
func TestQuotingEnclave(t *testing.T) {
	p := testPKI(t)
	notIntel := sgxtest.QEIdentity()
	notIntel.MRSIGNER[0] ^= 1
	otherProd := sgxtest.QEIdentity()
	otherProd.ProdID = 2
	debug := sgxtest.QEIdentity()
	debug.Flags |= AttributeDebug
	oldQE := sgxtest.QEIdentity()
	oldQE.SVN = 5
	tests := []struct {
		name  string
		qe    sgxtest.Enclave
		coll  bool
		kind  error
		field string
	}{
		{"not intel's", notIntel, false, attest.ErrNotAuthentic, "quote.qe_report.mrsigner"},
		{"other product", otherProd, false, attest.ErrNotAuthentic, "quote.qe_report.isv_prod_id"},
		{"debug qe", debug, false, attest.ErrNotAuthentic, "quote.qe_report.attributes.debug"},
		{"qe below identity levels", oldQE, true, attest.ErrNotAuthentic, "tcb_status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := sgxEvidence(p.Quote(t, sgxtest.DefaultEnclave(), testReportData, sgxtest.QuoteOptions{QE: &tt.qe}))
			if tt.coll {
				ev.Collateral = p.Collateral(t, sgxtest.CollateralOptions{})
			}
			v, _ := New(Options{Root: p.Root})
			_, err := v.Verify(context.Background(), ev, attest.Options{Now: fixtureNow})
			wantErr(t, err, tt.kind, tt.field)
		})
	}
}

// fakePCS serves SGX collateral the way Intel's PCS (and a PCCS) does.
type fakePCS struct {
	files map[string][]byte
	mu    sync.Mutex
	got   []string
	down  bool
}

func (f *fakePCS) Get(_ context.Context, u string) (http.Header, []byte, error) {
	f.mu.Lock()
	f.got = append(f.got, u)
	f.mu.Unlock()
	if f.down {
		return nil, nil, errors.New("connection refused")
	}
	h := http.Header{}
	chain := func(name, file string) { h.Set(name, url.QueryEscape(string(f.files[file]))) }
	switch {
	case strings.HasPrefix(u, "https://pccs.test/sgx/certification/v4/tcb?fmspc=00906ea10000"):
		chain(intel.HeaderTCBInfoChain, intel.FileTCBInfoChain)
		return h, f.files[intel.FileTCBInfo], nil
	case u == "https://pccs.test/sgx/certification/v4/qe/identity":
		chain(intel.HeaderQEIdentityChain, intel.FileQEIdentityChain)
		return h, f.files[intel.FileQEIdentity], nil
	case u == "https://pccs.test/sgx/certification/v4/pckcrl?ca=platform&encoding=der":
		chain(intel.HeaderPCKCRLChain, intel.FilePCKCRLChain)
		return h, f.files[intel.FilePCKCRL], nil
	case u == "https://pccs.test/sgx/certification/v4/rootcacrl":
		return h, f.files[intel.FileRootCRL], nil
	}
	return nil, nil, fmt.Errorf("GET %s: 404 Not Found", u)
}

func TestOnlineCollateral(t *testing.T) {
	p := testPKI(t)
	pcs := &fakePCS{files: p.Collateral(t, sgxtest.CollateralOptions{PlatformStatus: intel.SWHardeningNeeded, Advisories: []string{"INTEL-SA-00615"}})}
	cache := t.TempDir()
	v, err := New(Options{Root: p.Root, PCSURL: "https://pccs.test", Getter: pcs, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c, err := v.Verify(context.Background(), sgxEvidence(goodQuote(t, 3)), attest.Options{Now: fixtureNow})
		if err != nil {
			t.Fatal(err)
		}
		if c.TCBStatus != "SWHardeningNeeded" || strings.Join(c.Advisories, ",") != "INTEL-SA-00615" {
			t.Fatalf("status %s %v", c.TCBStatus, c.Advisories)
		}
	}
	if len(pcs.got) != 4 {
		t.Errorf("fetched %d times, want the 4 collateral URLs once: %v", len(pcs.got), pcs.got)
	}
	if _, err := os.Stat(filepath.Join(cache, "sgx-platform-00906ea10000", intel.FileTCBInfo)); err != nil {
		t.Errorf("collateral not cached on disk: %v", err)
	}

	// PCS down and nothing cached: authenticity cannot be decided, which is Unavailable.
	v, _ = New(Options{Root: p.Root, PCSURL: "https://pccs.test", Getter: &fakePCS{down: true}})
	_, err = v.Verify(context.Background(), sgxEvidence(goodQuote(t, 3)), attest.Options{Now: fixtureNow})
	wantErr(t, err, attest.ErrUnavailable, "collateral")
}

// The appraised party's own collateral never overrides the verifier's: it could be an older TCB
// info, still unexpired, from before a TCB recovery.
func TestEvidenceCollateralDoesNotOverride(t *testing.T) {
	p := testPKI(t)
	dir := t.TempDir()
	for name, b := range p.Collateral(t, sgxtest.CollateralOptions{PlatformStatus: intel.OutOfDate}) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v, err := New(Options{Root: p.Root, CollateralDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ev := sgxEvidence(goodQuote(t, 3))
	ev.Collateral = p.Collateral(t, sgxtest.CollateralOptions{})
	_, err = v.Verify(context.Background(), ev, attest.Options{Now: fixtureNow})
	wantErr(t, err, attest.ErrNotAuthentic, "tcb_status")
}

// Issue 14 item 6: without the PCK certificate's configuration extension the platform's SMT
// state is unknown, not off.
func TestSMTUnknownWithoutPCKConfiguration(t *testing.T) {
	p := testPKI(t)
	q := p.Quote(t, sgxtest.DefaultEnclave(), testReportData, sgxtest.QuoteOptions{Chain: p.ChainWithoutConfiguration(t)})
	v, _ := New(Options{Root: p.Root})
	c, err := v.Verify(context.Background(), sgxEvidence(q), attest.Options{Now: fixtureNow})
	if err != nil {
		t.Fatal(err)
	}
	if c.PlatformSMTEnabled != attest.TriUnknown {
		t.Fatalf("platform_smt_enabled %q, want unknown", c.PlatformSMTEnabled)
	}
}

// Issue 14 item 11: an SGX quote followed by other data (raw Open Enclave evidence: the quote and
// its custom claims) parses by the quote's own lengths, as TDX quotes do; what follows is carried
// in Trailing and changes no claim.
func TestQuoteFollowedByOtherData(t *testing.T) {
	p := testPKI(t)
	v, _ := New(Options{Root: p.Root})
	claimsBlob := []byte("\x01\x00\x00\x00\x02\x00\x00\x00custom claims buffer of Open Enclave evidence")
	for _, version := range []uint16{3, 4, 5} {
		good := goodQuote(t, version)
		want, err := v.Verify(context.Background(), sgxEvidence(good), attest.Options{Now: fixtureNow})
		if err != nil {
			t.Fatal(err)
		}
		withClaims := append(bytes.Clone(good), claimsBlob...)
		q, err := ParseQuote(withClaims)
		if err != nil {
			t.Fatalf("v%d quote followed by custom claims: %v", version, err)
		}
		if !bytes.Equal(q.Trailing, claimsBlob) {
			t.Fatalf("v%d trailing %q", version, q.Trailing)
		}
		got, err := v.Verify(context.Background(), sgxEvidence(withClaims), attest.Options{Now: fixtureNow})
		if err != nil {
			t.Fatalf("v%d quote followed by custom claims: %v", version, err)
		}
		if !bytes.Equal(got.Measurement, want.Measurement) || !bytes.Equal(got.ReportData, want.ReportData) || got.Debug != want.Debug {
			t.Fatalf("v%d trailing data changed the claims", version)
		}
	}
}

// Issue 14 item 10: SGX collateral with TCB info version 2 (as PCS API v3 and 2022-2023 PCCS
// caches serve it) appraises like version 3.
func TestTCBInfoV2Collateral(t *testing.T) {
	p := testPKI(t)
	v, _ := New(Options{Root: p.Root, AllowOutOfDate: true})
	for _, st := range []intel.Status{intel.UpToDate, intel.SWHardeningNeeded, intel.OutOfDate} {
		ev := sgxEvidence(goodQuote(t, 3))
		ev.Collateral = p.Collateral(t, sgxtest.CollateralOptions{TCBInfoV2: true, PlatformStatus: st})
		c, err := v.Verify(context.Background(), ev, attest.Options{Now: fixtureNow})
		if err != nil {
			t.Fatalf("%s with v2 TCB info: %v", st, err)
		}
		if c.TCBStatus != string(st) {
			t.Fatalf("status %q, want %q", c.TCBStatus, st)
		}
	}
}
