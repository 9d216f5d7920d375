package snp

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"

	"github.com/medicus-cloud/trust/attest"
)

func mustNew(t testing.TB, o Options) *Verifier {
	t.Helper()
	v, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// wantErr checks kind and field of a verification error.
func wantErr(t *testing.T, err error, kind error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("verified; want %v on %s", kind, field)
	}
	var ae *attest.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v is not an *attest.Error", err)
	}
	if !errors.Is(err, kind) || ae.Field != field {
		t.Fatalf("error %q: want kind %v field %q", err, kind, field)
	}
}

func TestVerify(t *testing.T) {
	milan := newFixture(t, Milan, fixtureOpts{})
	turin := newFixture(t, Turin, fixtureOpts{})
	genoa := newFixture(t, Genoa, fixtureOpts{})
	other := newFixture(t, Milan, fixtureOpts{vcekKey: newP384(t)})
	crl := milan.crl(t, t0, 365*24*time.Hour)
	revoked := milan.crl(t, t0, 365*24*time.Hour, milan.signer.Ask.SerialNumber)
	stale := milan.crl(t, t0, 24*time.Hour)
	foreign := turin.crl(t, t0, 365*24*time.Hour) // Turin's ARK uses the same test key but a different name
	var rd [64]byte
	copy(rd[:], "bound report data")
	lowTCB := milan.tcb
	lowTCB.SNP--
	var otherChip [64]byte
	copy(otherChip[:], bytes.Repeat([]byte{0x99}, 64))
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }

	type tc struct {
		name  string
		f     *fixture
		ev    func() *attest.Evidence
		opts  *Options
		at    time.Time
		kind  error
		field string
		check func(t *testing.T, c *attest.Claims)
	}
	ev := func(f *fixture, r []byte, coll map[string][]byte) func() *attest.Evidence {
		return func() *attest.Evidence {
			return &attest.Evidence{TEE: attest.SEVSNP, Report: r, Certificates: f.table(t), Collateral: coll}
		}
	}
	withCRL := map[string][]byte{"crl.der": crl}
	tests := []tc{
		{name: "milan vcek v3", f: milan, ev: ev(milan, milan.report(t, reportSpec{reportData: rd}), withCRL),
			check: func(t *testing.T, c *attest.Claims) {
				if c.Platform["product"] != Milan || c.Platform["signer"] != SignerVCEK || c.Platform["chip_id"] != hex.EncodeToString(milan.hwid[:]) {
					t.Errorf("platform %v", c.Platform)
				}
				if !bytes.Equal(c.ReportData, rd[:]) || c.Debug || c.Migration || c.PolicySMTAllowed == nil || !*c.PolicySMTAllowed {
					t.Errorf("claims %+v", c)
				}
				if c.TCB["snp"] != 8 || c.TCB["microcode"] != 115 || c.TCB["bootloader"] != 3 || c.TCB["committed.snp"] != 8 || c.TCB["guest_svn"] != 7 {
					t.Errorf("tcb %v", c.TCB)
				}
				if _, ok := c.TCB["fmc"]; ok {
					t.Errorf("milan has no fmc: %v", c.TCB)
				}
				if string(c.Config["host_data"]) != "host-data-0123456789abcdefghijkl" || c.Attributes["version"] != 3 || c.Attributes["guest_policy"] != 0x30000 {
					t.Errorf("config %v attributes %v", c.Config, c.Attributes)
				}
				if c.Attributes["crl_checked"] != 1 {
					t.Errorf("crl_checked %d", c.Attributes["crl_checked"])
				}
				if len(c.Measurement) != 48 || c.Measurement[0] != 0x90 {
					t.Errorf("measurement %x", c.Measurement)
				}
			}},
		{name: "milan vcek v2 (product from certificate)", f: milan, ev: ev(milan, milan.report(t, reportSpec{version: 2}), withCRL),
			check: func(t *testing.T, c *attest.Claims) {
				if c.Platform["product"] != Milan {
					t.Errorf("product %q", c.Platform["product"])
				}
			}},
		{name: "milan vcek v5", f: milan, ev: ev(milan, milan.report(t, reportSpec{version: 5}), withCRL)},
		{name: "genoa vcek", f: genoa, ev: ev(genoa, genoa.report(t, reportSpec{}), map[string][]byte{"crl.der": genoa.crl(t, t0, 365*24*time.Hour)}),
			check: func(t *testing.T, c *attest.Claims) {
				if c.Platform["product"] != Genoa {
					t.Errorf("product %q", c.Platform["product"])
				}
			}},
		{name: "turin vcek with fmc and short hwid", f: turin, ev: ev(turin, turin.report(t, reportSpec{}), map[string][]byte{"crl.der": turin.crl(t, t0, 365*24*time.Hour)}),
			check: func(t *testing.T, c *attest.Claims) {
				if c.Platform["product"] != Turin || c.TCB["fmc"] != 1 || c.TCB["snp"] != 22 || c.TCB["bootloader"] != 4 {
					t.Errorf("platform %v tcb %v", c.Platform, c.TCB)
				}
			}},
		{name: "milan vlek", f: milan, ev: ev(milan, milan.report(t, reportSpec{signer: abi.VlekReportSigner}), withCRL),
			check: func(t *testing.T, c *attest.Claims) {
				if c.Platform["signer"] != SignerVLEK || c.Platform["csp_id"] != "medicus-test-csp" {
					t.Errorf("platform %v", c.Platform)
				}
			}},
		{name: "debug guest verifies and says so", f: milan, ev: ev(milan, milan.report(t, reportSpec{policy: 0x30000 | policyDebug | policyMigrateMA}), withCRL),
			check: func(t *testing.T, c *attest.Claims) {
				if !c.Debug || !c.Migration {
					t.Errorf("debug %v migration %v", c.Debug, c.Migration)
				}
			}},
		{name: "masked chip id", f: milan, ev: ev(milan, milan.report(t, reportSpec{mask: true}), withCRL),
			check: func(t *testing.T, c *attest.Claims) {
				if c.Platform["chip_id"] != hex.EncodeToString(milan.hwid[:]) || c.Attributes["chip_id_masked"] != 1 {
					t.Errorf("platform %v", c.Platform)
				}
			}},
		{name: "flipped signature byte", f: milan, ev: ev(milan, flip(milan.report(t, reportSpec{}), signedLen+3), withCRL),
			kind: attest.ErrNotAuthentic, field: "report.signature"},
		{name: "flipped report data", f: milan, ev: ev(milan, flip(milan.report(t, reportSpec{}), 0x50), withCRL),
			kind: attest.ErrNotAuthentic, field: "report.signature"},
		{name: "signed by another chip", f: milan, ev: ev(milan, other.report(t, reportSpec{}), withCRL),
			kind: attest.ErrNotAuthentic, field: "report.signature"},
		{name: "chip id not the certificate's", f: milan, ev: ev(milan, milan.report(t, reportSpec{chipID: &otherChip}), withCRL),
			kind: attest.ErrNotAuthentic, field: "platform.chip_id"},
		{name: "tcb lower than the certificate's", f: milan, ev: ev(milan, milan.report(t, reportSpec{tcb: &lowTCB}), withCRL),
			kind: attest.ErrNotAuthentic, field: "tcb.snp"},
		{name: "genoa report with a milan chain", f: milan,
			ev:   ev(milan, milan.report(t, reportSpec{fms: &[3]byte{0x19, 0x11, 1}}), withCRL),
			opts: &Options{Roots: map[string]*Roots{Milan: milan.roots[Milan], Genoa: genoa.roots[Genoa]}, Revocation: InsecureRevocationSkip},
			kind: attest.ErrNotAuthentic, field: "certificates.vcek"},
		{name: "product without roots", f: milan, ev: ev(milan, milan.report(t, reportSpec{fms: &[3]byte{0x1A, 0x02, 0}}), withCRL),
			kind: attest.ErrNotAuthentic, field: "certificates.ark"},
		{name: "vcek not yet valid", f: milan, at: t0.Add(-time.Hour), ev: ev(milan, milan.report(t, reportSpec{}), withCRL),
			kind: attest.ErrNotAuthentic, field: "certificates.vcek"},
		{name: "vcek expired", f: milan, at: t0.Add(8 * 365 * 24 * time.Hour), ev: ev(milan, milan.report(t, reportSpec{}), withCRL),
			opts: &Options{Revocation: InsecureRevocationSkip},
			kind: attest.ErrNotAuthentic, field: "certificates.vcek"},
		{name: "ask revoked", f: milan, ev: ev(milan, milan.report(t, reportSpec{}), map[string][]byte{"crl.der": revoked}),
			kind: attest.ErrNotAuthentic, field: "certificates.ask"},
		{name: "asvk revoked", f: milan, ev: ev(milan, milan.report(t, reportSpec{signer: abi.VlekReportSigner}), map[string][]byte{"crl.der": revoked}),
			kind: attest.ErrNotAuthentic, field: "certificates.asvk"},
		{name: "no crl", f: milan, ev: ev(milan, milan.report(t, reportSpec{}), nil),
			kind: attest.ErrUnavailable, field: "certificates.crl"},
		{name: "stale crl", f: milan, ev: ev(milan, milan.report(t, reportSpec{}), map[string][]byte{"crl.der": stale}),
			kind: attest.ErrUnavailable, field: "certificates.crl"},
		{name: "crl of another product", f: milan, ev: ev(milan, milan.report(t, reportSpec{}), map[string][]byte{"crl.der": foreign}),
			kind: attest.ErrUnavailable, field: "certificates.crl"},
		{name: "no crl but only if available", f: milan, ev: ev(milan, milan.report(t, reportSpec{}), nil), opts: &Options{Revocation: RevocationIfAvailable},
			check: func(t *testing.T, c *attest.Claims) {
				if c.Attributes["crl_checked"] != 0 {
					t.Errorf("crl_checked %d", c.Attributes["crl_checked"])
				}
			}},
		{name: "truncated", f: milan, ev: ev(milan, milan.report(t, reportSpec{})[:ReportSize-1], withCRL),
			kind: attest.ErrMalformed, field: "report"},
		{name: "oversized", f: milan, ev: ev(milan, append(milan.report(t, reportSpec{}), 0), withCRL),
			kind: attest.ErrMalformed, field: "report"},
		{name: "unknown version", f: milan, ev: ev(milan, milan.report(t, reportSpec{version: 6}), withCRL),
			kind: attest.ErrMalformed, field: "report.version"},
		{name: "unsigned", f: milan, ev: ev(milan, milan.report(t, reportSpec{signer: abi.NoneReportSigner}), withCRL),
			kind: attest.ErrNotAuthentic, field: "report.signer_info"},
		{name: "vmpl out of range", f: milan, ev: ev(milan, milan.report(t, reportSpec{vmpl: 4}), withCRL),
			kind: attest.ErrMalformed, field: "report.vmpl"},
		{name: "reserved policy bit", f: milan, ev: ev(milan, milan.report(t, reportSpec{policy: 0x10000}), withCRL),
			kind: attest.ErrMalformed, field: "report.policy"},
		{name: "wrong tee", f: milan, ev: func() *attest.Evidence {
			return &attest.Evidence{TEE: attest.TDX, Report: milan.report(t, reportSpec{})}
		}, kind: attest.ErrMalformed, field: "tee"},
		{name: "nil evidence", f: milan, ev: func() *attest.Evidence { return nil }, kind: attest.ErrMalformed, field: "evidence"},
		{name: "no vcek and no kds", f: milan, ev: func() *attest.Evidence {
			return &attest.Evidence{TEE: attest.SEVSNP, Report: milan.report(t, reportSpec{}), Collateral: withCRL}
		}, kind: attest.ErrUnavailable, field: "certificates.vcek"},
		{name: "vlek report without vlek", f: milan, ev: func() *attest.Evidence {
			return &attest.Evidence{TEE: attest.SEVSNP, Report: milan.report(t, reportSpec{signer: abi.VlekReportSigner}), Certificates: vcekOnlyTable(milan.signer.Vcek.Raw), Collateral: withCRL}
		}, kind: attest.ErrUnavailable, field: "certificates.vlek"},
		{name: "vcek from collateral", f: milan, ev: func() *attest.Evidence {
			return &attest.Evidence{TEE: attest.SEVSNP, Report: milan.report(t, reportSpec{}), Collateral: map[string][]byte{"crl.der": crl, "vcek.der": milan.signer.Vcek.Raw}}
		}},
		{name: "vlek certificate for a vcek report", f: milan, ev: func() *attest.Evidence {
			return &attest.Evidence{TEE: attest.SEVSNP, Report: milan.report(t, reportSpec{}), Certificates: vcekOnlyTable(milan.signer.Vlek.Raw), Collateral: withCRL}
		}, kind: attest.ErrNotAuthentic, field: "certificates.vcek"},
		{name: "garbage certificate table", f: milan, ev: func() *attest.Evidence {
			return &attest.Evidence{TEE: attest.SEVSNP, Report: milan.report(t, reportSpec{}), Certificates: []byte("not a table"), Collateral: withCRL}
		}, kind: attest.ErrMalformed, field: "certificates"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Roots: tc.f.roots}
			if tc.opts != nil {
				o = *tc.opts
				if o.Roots == nil {
					o.Roots = tc.f.roots
				}
			}
			e := tc.ev()
			if e != nil && e.Collateral["crl.der"] != nil {
				// The tables give the CRL with the evidence for brevity; the verifier takes CRLs
				// only from the operator's collateral directory.
				o.CertsDir = crlDir(t, e.Collateral["crl.der"])
				rest := map[string][]byte{}
				for k, b := range e.Collateral {
					if k != "crl.der" {
						rest[k] = b
					}
				}
				e.Collateral = rest
			}
			v := mustNew(t, o)
			at := tVerify
			if !tc.at.IsZero() {
				at = tc.at
			}
			c, err := v.Verify(context.Background(), e, attest.Options{Now: at})
			if tc.kind != nil {
				wantErr(t, err, tc.kind, tc.field)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.TEE != attest.SEVSNP {
				t.Errorf("tee %q", c.TEE)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

// TestWarmWindow: a verified chain is reused while its window holds and checked again after.
func TestWarmWindow(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	dir := crlDir(t, f.crl(t, t0, 30*24*time.Hour))
	var seen []bool
	v := mustNew(t, Options{Roots: f.roots, CertsDir: dir, CacheObserver: func(hit bool) { seen = append(seen, hit) }})
	ev := &attest.Evidence{TEE: attest.SEVSNP, Report: f.report(t, reportSpec{}), Certificates: f.table(t)}
	if _, err := v.Verify(context.Background(), ev, attest.Options{Now: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// Warm: the CRL is gone from the directory, the cached chain still holds.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), ev, attest.Options{Now: t0.Add(2 * time.Hour)}); err != nil {
		t.Fatalf("warm: %v", err)
	}
	if len(seen) != 2 || seen[0] || !seen[1] {
		t.Fatalf("cache observer saw %v, want a miss then a hit", seen)
	}
	// Past the CRL's next update the chain is checked again and there is no current CRL.
	_, err := v.Verify(context.Background(), ev, attest.Options{Now: t0.Add(31 * 24 * time.Hour)})
	wantErr(t, err, attest.ErrUnavailable, "certificates.crl")
	// A CRL offered with the evidence is not taken: the attester could offer an old one.
	ev.Collateral = map[string][]byte{"crl.der": f.crl(t, t0.Add(30*24*time.Hour), 30*24*time.Hour)}
	_, err = v.Verify(context.Background(), ev, attest.Options{Now: t0.Add(31 * 24 * time.Hour)})
	wantErr(t, err, attest.ErrUnavailable, "certificates.crl")
}

// crlDir is a collateral directory holding crl as both the VCEK and the VLEK chain's CRL.
func crlDir(t testing.TB, crl []byte) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range []string{"crl-vcek.der", "crl-vlek.der"} {
		if err := os.WriteFile(filepath.Join(dir, n), crl, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestRealMilan verifies a report from a real Milan machine with its real VCEK under AMD's
// embedded roots (no CRL: none was published with the vector).
func TestRealMilan(t *testing.T) {
	report := readTestdata(t, "milan-v2-report.bin")
	vcek := readTestdata(t, "milan-vcek.der")
	v := mustNew(t, Options{Revocation: RevocationIfAvailable})
	ev := &attest.Evidence{TEE: attest.SEVSNP, Report: report, Collateral: map[string][]byte{"vcek.der": vcek}}
	c, err := v.Verify(context.Background(), ev, attest.Options{Now: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	const chip = "3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d"
	if c.Platform["product"] != Milan || c.Platform["chip_id"] != chip {
		t.Errorf("platform %v", c.Platform)
	}
	if c.TCB["bootloader"] != 2 || c.TCB["tee"] != 0 || c.TCB["snp"] != 5 || c.TCB["microcode"] != 68 {
		t.Errorf("tcb %v", c.TCB)
	}
	// The same report with one bit of report data changed is not authentic.
	bad := bytes.Clone(report)
	bad[0x50] ^= 0x80
	_, err = v.Verify(context.Background(), &attest.Evidence{TEE: attest.SEVSNP, Report: bad, Collateral: ev.Collateral}, attest.Options{Now: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)})
	wantErr(t, err, attest.ErrNotAuthentic, "report.signature")
	// And after the VCEK expired (2029-09-24) the chain no longer holds.
	_, err = mustNew(t, Options{Revocation: RevocationIfAvailable}).Verify(context.Background(), ev, attest.Options{Now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)})
	wantErr(t, err, attest.ErrNotAuthentic, "certificates.vcek")
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAMDRoots(t *testing.T) {
	roots, err := AMDRoots()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{Milan, Genoa, Turin} {
		r := roots[p]
		if r == nil || r.ASK == nil || r.ASVK == nil || r.ARK.Subject.CommonName != "ARK-"+p || r.ASVK.Subject.CommonName != "SEV-VLEK-"+p {
			t.Errorf("%s roots incomplete: %+v", p, r)
		}
	}
}

func TestSplitFile(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	r := f.report(t, reportSpec{})
	table := f.table(t)
	tests := []struct {
		name      string
		in        []byte
		wantTable bool
		wantErr   string
	}{
		{name: "report only", in: r},
		{name: "report and table", in: append(bytes.Clone(r), table...), wantTable: true},
		{name: "truncated", in: r[:100], wantErr: "truncated"},
		{name: "trailing garbage", in: append(bytes.Clone(r), "garbage"...), wantErr: "certificates"},
		{name: "table entry out of range", in: append(bytes.Clone(r), badTable()...), wantErr: "outside"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, tab, err := SplitFile(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, attest.ErrMalformed) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rep, r) || (len(tab) > 0) != tc.wantTable {
				t.Fatalf("split wrong: %d %d", len(rep), len(tab))
			}
		})
	}
}

// badTable has one entry whose offset plus length overflows 32 bits.
func badTable() []byte {
	b := make([]byte, 48)
	copy(b, guidVCEK[:])
	b[16], b[17], b[18], b[19] = 0xff, 0xff, 0xff, 0xff
	b[20] = 0x10
	return b
}

func TestDecodeTCB(t *testing.T) {
	for _, p := range []string{Milan, Genoa, Turin} {
		want := defaultTCB(p)
		if got := DecodeTCB(encodeTCB(p, want), p); got != want {
			t.Errorf("%s: %+v, want %+v", p, got, want)
		}
	}
	// Real Milan TCB from the test vector's KDS URL: blSPL=2 teeSPL=0 snpSPL=5 ucodeSPL=68.
	if got := DecodeTCB(0x4405000000000002, Milan); got != (TCB{Bootloader: 2, SNP: 5, Microcode: 68}) {
		t.Errorf("milan vector: %+v", got)
	}
}

func TestNewRejectsBadRoots(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	tests := map[string]map[string]*Roots{
		"mislabelled":     {Genoa: f.roots[Milan]},
		"no ark":          {Milan: {Product: Milan, ASK: f.signer.Ask}},
		"no intermediate": {Milan: {Product: Milan, ARK: f.signer.Ark}},
	}
	for name, roots := range tests {
		if _, err := New(Options{Roots: roots}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(Options{Revocation: 9}); err == nil {
		t.Error("unknown revocation mode accepted")
	}
}

// TestEvidenceFromFile: the CLI path, a report file with its certificate table, verified offline.
func TestEvidenceFromFile(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "crl.der"), f.crl(t, t0, 365*24*time.Hour), 0o644); err != nil {
		t.Fatal(err)
	}
	ev, err := EvidenceFromFile(append(f.report(t, reportSpec{}), f.table(t)...))
	if err != nil {
		t.Fatal(err)
	}
	v := mustNew(t, Options{Roots: f.roots, CertsDir: dir})
	c, err := v.Verify(context.Background(), ev, attest.Options{Now: tVerify})
	if err != nil {
		t.Fatal(err)
	}
	if c.Platform["product"] != Milan || c.Attributes["crl_checked"] != 1 {
		t.Fatalf("claims %+v", c)
	}
}

func TestMixedEndianGUIDs(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	table := vcekOnlyTable(f.signer.Vcek.Raw)
	g := table[:16]
	g[0], g[1], g[2], g[3] = g[3], g[2], g[1], g[0]
	g[4], g[5] = g[5], g[4]
	g[6], g[7] = g[7], g[6]
	v := mustNew(t, Options{Roots: f.roots, Revocation: InsecureRevocationSkip})
	if _, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.SEVSNP, Report: f.report(t, reportSpec{}), Certificates: table}, attest.Options{Now: tVerify}); err != nil {
		t.Fatal(err)
	}
}
