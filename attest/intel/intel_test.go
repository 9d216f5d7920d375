package intel_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/intel/inteltest"
)

var realTime = time.Date(2023, 7, 1, 1, 0, 0, 0, time.UTC)

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRealPCK(t *testing.T) {
	r := intel.NewRoots(nil)
	ch, err := r.VerifyPEM(read(t, "spr_e4_pck_chain.pem"), realTime)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := intel.ParsePCKExtensions(ch.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if ext.FMSPCHex() != "50806f000000" || ext.PCEIDHex() != "0000" || ext.PCESVN != 11 || ext.SMTEnabled == nil || len(ext.PPID) != 16 {
		t.Errorf("extensions %+v", ext)
	}
	if ca, err := intel.PCKCAKind(ch.Leaf); err != nil || ca != intel.CAPlatform {
		t.Errorf("CA %q %v", ca, err)
	}
	// A second verification comes from the cache and is still time-checked.
	if ch2, err := r.VerifyPEM(read(t, "spr_e4_pck_chain.pem"), realTime); err != nil || ch2 != ch {
		t.Errorf("cache: %v", err)
	}
	if _, err := r.VerifyPEM(read(t, "spr_e4_pck_chain.pem"), realTime.AddDate(40, 0, 0)); err == nil {
		t.Error("expired chain accepted from the cache")
	}
}

func TestRealCollateral(t *testing.T) {
	c, err := intel.ReadDir("testdata/spr_e4")
	if err != nil {
		t.Fatal(err)
	}
	r := intel.NewRoots(nil)
	v, err := r.VerifyCollateral(c, realTime)
	if err != nil {
		t.Fatal(err)
	}
	if v.TCBInfo.ID != "TDX" || v.QEIdentity.ID != "TD_QE" || len(v.TCBInfo.TCBLevels) != 2 {
		t.Errorf("verified %+v", v)
	}
	ch, err := r.VerifyPEM(read(t, "spr_e4_pck_chain.pem"), realTime)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.CheckPCK(ch); err != nil {
		t.Errorf("PCK: %v", err)
	}
	for _, tc := range []struct {
		name string
		at   time.Time
		mod  func(c *intel.Collateral)
		file string
	}{
		{"expired", realTime.AddDate(0, 1, 0), nil, intel.FileTCBInfo},
		{"not yet valid", realTime.AddDate(0, -1, 0), nil, intel.FileTCBInfo},
		{"tcb info signature", realTime, func(c *intel.Collateral) {
			c.TCBInfo = bytes.Replace(c.TCBInfo, []byte(`"pcesvn":11`), []byte(`"pcesvn":10`), 1)
		}, intel.FileTCBInfo},
		{"qe identity signature", realTime, func(c *intel.Collateral) {
			c.QEIdentity = bytes.Replace(c.QEIdentity, []byte(`"isvsvn":4`), []byte(`"isvsvn":3`), 1)
		}, intel.FileQEIdentity},
		{"tcb chain swapped for the PCK CA chain", realTime, func(c *intel.Collateral) { c.TCBInfoChain = c.PCKCRLChain }, intel.FileTCBInfoChain},
		{"pck crl flipped", realTime, func(c *intel.Collateral) { c.PCKCRL = flip(c.PCKCRL, len(c.PCKCRL)-10) }, intel.FilePCKCRL},
		{"root crl flipped", realTime, func(c *intel.Collateral) { c.RootCRL = flip(c.RootCRL, len(c.RootCRL)-10) }, intel.FileRootCRL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := intel.ReadDir("testdata/spr_e4")
			if tc.mod != nil {
				tc.mod(c)
			}
			_, err := intel.NewRoots(nil).VerifyCollateral(c, tc.at)
			var fe *intel.FileError
			if !errors.As(err, &fe) || fe.File != tc.file {
				t.Fatalf("got %v, want an error about %s", err, tc.file)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 1
	return b
}

var pki = sync.OnceValues(func() (*inteltest.PKI, error) {
	nb := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	return inteltest.New(nb, nb.AddDate(5, 0, 0))
})

func TestRevocation(t *testing.T) {
	p, err := pki()
	if err != nil {
		t.Fatal(err)
	}
	pck, _, err := p.NewPCK(inteltest.PCKSpec{})
	if err != nil {
		t.Fatal(err)
	}
	now := p.NotBefore.AddDate(0, 1, 0)
	ti := map[string]any{"id": "TDX", "version": 3, "issueDate": p.NotBefore, "nextUpdate": p.NotAfter, "fmspc": "00906ED50000", "pceId": "0000",
		"tdxModule": map[string]string{"mrsigner": strings.Repeat("00", 48), "attributes": "0000000000000000", "attributesMask": "FFFFFFFFFFFFFFFF"},
		"tcbLevels": []any{map[string]any{"tcb": map[string]any{"sgxtcbcomponents": make([]struct {
			SVN int `json:"svn"`
		}, 16), "pcesvn": 0, "tdxtcbcomponents": make([]struct {
			SVN int `json:"svn"`
		}, 16)}, "tcbDate": p.NotBefore, "tcbStatus": "UpToDate"}}}
	qe := map[string]any{"id": "TD_QE", "version": 2, "issueDate": p.NotBefore, "nextUpdate": p.NotAfter, "miscselect": "00000000", "miscselectMask": "FFFFFFFF",
		"attributes": strings.Repeat("00", 16), "attributesMask": strings.Repeat("FF", 16), "mrsigner": strings.Repeat("AB", 32), "isvprodid": 2,
		"tcbLevels": []any{map[string]any{"tcb": map[string]int{"isvsvn": 0}, "tcbDate": p.NotBefore, "tcbStatus": "UpToDate"}}}
	chain := []*x509.Certificate{pck, p.PCKCA, p.Root}
	for _, tc := range []struct {
		name          string
		revokedPCK    []*big.Int
		revokedByRoot []*big.Int
		collErr       string
		pckErr        string
	}{
		{name: "clean"},
		{name: "PCK revoked", revokedPCK: []*big.Int{pck.SerialNumber}, pckErr: "revoked by the Intel SGX PCK Platform CA CRL"},
		{name: "PCK CA revoked", revokedByRoot: []*big.Int{p.PCKCA.SerialNumber}, collErr: intel.FilePCKCRLChain},
		{name: "TCB signer revoked", revokedByRoot: []*big.Int{p.TCBSigning.SerialNumber}, collErr: intel.FileTCBInfoChain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := p.Collateral(inteltest.CollateralSpec{TCBInfo: ti, QEIdentity: qe, RevokedPCKs: tc.revokedPCK, RevokedByRoot: tc.revokedByRoot})
			if err != nil {
				t.Fatal(err)
			}
			r := intel.NewRoots(p.Root)
			v, err := r.VerifyCollateral(c, now)
			if tc.collErr != "" {
				var fe *intel.FileError
				if !errors.As(err, &fe) || fe.File != tc.collErr {
					t.Fatalf("got %v, want an error about %s", err, tc.collErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ch, err := r.VerifyPEM(inteltest.ChainPEM(chain...), now)
			if err != nil {
				t.Fatal(err)
			}
			err = v.CheckPCK(ch)
			if (err == nil) != (tc.pckErr == "") || (err != nil && !strings.Contains(err.Error(), tc.pckErr)) {
				t.Fatalf("CheckPCK: %v, want %q", err, tc.pckErr)
			}
		})
	}
}

func TestConverge(t *testing.T) {
	for _, tc := range []struct{ platform, component, want intel.Status }{
		{intel.UpToDate, intel.UpToDate, intel.UpToDate},
		{intel.UpToDate, intel.OutOfDate, intel.OutOfDate},
		{intel.SWHardeningNeeded, intel.OutOfDate, intel.OutOfDate},
		{intel.ConfigurationNeeded, intel.OutOfDate, intel.OutOfDateConfigurationNeeded},
		{intel.ConfigurationAndSWHardeningNeeded, intel.OutOfDate, intel.OutOfDateConfigurationNeeded},
		{intel.OutOfDate, intel.UpToDate, intel.OutOfDate},
		{intel.UpToDate, intel.Revoked, intel.Revoked},
		{intel.ConfigurationNeeded, intel.SWHardeningNeeded, intel.ConfigurationNeeded},
	} {
		if got := intel.Converge(tc.platform, tc.component); got != tc.want {
			t.Errorf("Converge(%s, %s) = %s, want %s", tc.platform, tc.component, got, tc.want)
		}
	}
}

func TestDecodeCRL(t *testing.T) {
	der := read(t, "spr_e4/rootcrl.der")
	for name, in := range map[string][]byte{
		"der": der,
		"pem": pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}),
		"hex": []byte(hex.EncodeToString(der) + "\n"),
	} {
		got, err := intel.DecodeCRL(in)
		if err != nil || !bytes.Equal(got, der) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := intel.DecodeCRL([]byte("not a crl")); err == nil {
		t.Error("garbage accepted")
	}
}

// fakePCS serves the real collateral the way PCS does: JSON bodies, URL-encoded issuer chains
// in headers, DER CRLs.
func fakePCS(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	coll, err := intel.ReadDir("testdata/spr_e4")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	serve := func(body, chain []byte, header string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			if header != "" {
				w.Header().Set(header, url.QueryEscape(string(chain)))
			}
			w.Write(body)
		}
	}
	mux.HandleFunc("/tdx/certification/v4/tcb", func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.URL.Query().Get("fmspc"), "50806f000000") {
			http.NotFound(w, r)
			return
		}
		serve(coll.TCBInfo, coll.TCBInfoChain, intel.HeaderTCBInfoChain)(w, r)
	})
	mux.HandleFunc("/tdx/certification/v4/qe/identity", serve(coll.QEIdentity, coll.QEIdentityChain, intel.HeaderQEIdentityChain))
	mux.HandleFunc("/sgx/certification/v4/pckcrl", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ca") != "platform" || r.URL.Query().Get("encoding") != "der" {
			http.Error(w, "bad query", http.StatusBadRequest)
			return
		}
		serve(coll.PCKCRL, coll.PCKCRLChain, intel.HeaderPCKCRLChain)(w, r)
	})
	// PCCS serves the root CA CRL hex-encoded.
	mux.HandleFunc("/sgx/certification/v4/rootcacrl", serve([]byte(hex.EncodeToString(coll.RootCRL)), nil, ""))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestFetch(t *testing.T) {
	srv, _ := fakePCS(t)
	out := filepath.Join(t.TempDir(), "coll")
	o := intel.FetchOptions{BaseURL: srv.URL, Getter: intel.HTTPGetter{Client: srv.Client()}}
	if err := intel.Fetch(context.Background(), o, "50806F000000", out); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	want := slices.Clone(intel.Files)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("wrote %v, want %v", names, want)
	}
	for _, name := range intel.Files {
		got, _ := os.ReadFile(filepath.Join(out, name))
		if !bytes.Equal(got, read(t, filepath.Join("spr_e4", name))) {
			t.Errorf("%s differs from what PCS served", name)
		}
	}
	for _, bad := range []string{"50806f", "zz806f000000", ""} {
		if err := intel.Fetch(context.Background(), o, bad, out); err == nil {
			t.Errorf("fmspc %q accepted", bad)
		}
	}
	if err := intel.Fetch(context.Background(), o, "00906ed50000", out); err == nil {
		t.Error("unknown FMSPC fetched")
	}
	if err := intel.Fetch(context.Background(), intel.FetchOptions{BaseURL: "ftp://x"}, "50806f000000", out); err == nil {
		t.Error("ftp URL accepted")
	}
}

func TestSourceCache(t *testing.T) {
	srv, hits := fakePCS(t)
	s := &intel.Source{Fetch: intel.FetchOptions{BaseURL: srv.URL, Getter: intel.HTTPGetter{Client: srv.Client()}}, CacheDir: t.TempDir()}
	ctx := context.Background()
	for range 3 {
		if _, err := s.Get(ctx, "50806f000000", intel.CAPlatform, realTime); err != nil {
			t.Fatal(err)
		}
	}
	if n := hits.Load(); n != 4 {
		t.Errorf("%d requests for three gets of fresh collateral, want 4", n)
	}
	// Past the QE identity's nextUpdate, the cache is stale and PCS is asked again.
	if _, err := s.Get(ctx, "50806f000000", intel.CAPlatform, realTime.AddDate(0, 0, 10)); err != nil {
		t.Fatal(err)
	}
	if n := hits.Load(); n != 8 {
		t.Errorf("%d requests after expiry, want 8", n)
	}
}

func TestCollateralFromFiles(t *testing.T) {
	c, err := intel.ReadDir("testdata/spr_e4")
	if err != nil {
		t.Fatal(err)
	}
	m := c.Map()
	m["extra.json"] = []byte("{}")
	if _, err := intel.CollateralFromFiles(m); err == nil {
		t.Error("unknown file accepted")
	}
	m = c.Map()
	delete(m, intel.FileRootCRL)
	var fe *intel.FileError
	if _, err := intel.CollateralFromFiles(m); !errors.As(err, &fe) || fe.File != intel.FileRootCRL {
		t.Errorf("missing file: %v", err)
	}
}

func TestRelaunch(t *testing.T) {
	comps := func(v ...int) []intel.TCBComponent {
		out := make([]intel.TCBComponent, 16)
		for i, x := range v {
			out[i].SVN = x
		}
		return out
	}
	ti := &intel.TCBInfo{
		TCBLevels:           []intel.TCBLevel{{TCB: intel.TCB{TDXTCBComponents: comps(4, 0, 7)}}},
		TDXModuleIdentities: []intel.TDXModuleIdentity{{ID: "TDX_03", TCBLevels: []intel.TCBLevel{{TCB: intel.TCB{ISVSVN: 6}}}}},
	}
	svn2 := func(v ...byte) []byte { b := make([]byte, 16); copy(b, v); return b }
	for _, tc := range []struct {
		name                 string
		svn2                 []byte
		sgx, tdx, module, qe intel.Status
		want                 intel.Status
	}{
		{"module 0 now current", svn2(4, 0, 7), intel.UpToDate, intel.OutOfDate, intel.OutOfDate, intel.UpToDate, intel.TDRelaunchAdvised},
		{"module 3 now current", svn2(6, 3, 7), intel.UpToDate, intel.OutOfDate, intel.OutOfDate, intel.UpToDate, intel.TDRelaunchAdvised},
		{"configuration needed", svn2(6, 3, 7), intel.ConfigurationNeeded, intel.OutOfDateConfigurationNeeded, intel.OutOfDate, intel.UpToDate, intel.TDRelaunchAdvisedConfigurationNeeded},
		{"module still behind", svn2(5, 3, 7), intel.UpToDate, intel.OutOfDate, intel.OutOfDate, intel.UpToDate, intel.OutOfDate},
		{"microcode behind", svn2(6, 3, 6), intel.UpToDate, intel.OutOfDate, intel.OutOfDate, intel.UpToDate, intel.OutOfDate},
		{"unknown module", svn2(6, 4, 7), intel.UpToDate, intel.OutOfDate, intel.OutOfDate, intel.UpToDate, intel.OutOfDate},
		{"QE out of date", svn2(6, 3, 7), intel.UpToDate, intel.OutOfDate, intel.OutOfDate, intel.OutOfDate, intel.OutOfDate},
		{"SGX out of date", svn2(6, 3, 7), intel.OutOfDate, intel.OutOfDate, intel.OutOfDate, intel.UpToDate, intel.OutOfDate},
		{"module current, platform not", svn2(6, 3, 7), intel.UpToDate, intel.OutOfDate, intel.UpToDate, intel.UpToDate, intel.OutOfDate},
		{"not out of date", svn2(6, 3, 7), intel.UpToDate, intel.UpToDate, intel.UpToDate, intel.UpToDate, intel.UpToDate},
	} {
		if got := ti.Relaunch(tc.svn2, tc.sgx, tc.tdx, tc.module, tc.qe); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
