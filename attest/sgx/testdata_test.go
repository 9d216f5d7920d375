package sgx

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/sgx/sgxtest"
)

var update = flag.Bool("update", false, "rewrite the sgxtest fixtures in testdata/")

// fixtureReportData is the report data of the testdata quotes.
var fixtureReportData = func() (rd [64]byte) { copy(rd[:], "medicus-trust sgx testdata"); return }()

// TestGenerateTestdata rewrites testdata/ from a fresh sgxtest platform with -update.
func TestGenerateTestdata(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/")
	}
	p := sgxtest.NewPlatform(t)
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join("testdata", name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("root.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Root.Raw}))
	e := sgxtest.DefaultEnclave()
	for _, v := range []uint16{3, 4, 5} {
		write("quote_v"+string(rune('0'+v))+".bin", p.Quote(t, e, fixtureReportData, sgxtest.QuoteOptions{Version: v, AuthData: []byte(testAuthData)}))
	}
	dbg := e
	dbg.Flags |= AttributeDebug
	write("quote_debug.bin", p.Quote(t, dbg, fixtureReportData, sgxtest.QuoteOptions{}))
	write("quote_other_root.bin", sgxtest.NewPlatform(t).Quote(t, e, fixtureReportData, sgxtest.QuoteOptions{}))
	for name, b := range p.Collateral(t, sgxtest.CollateralOptions{}) {
		write(filepath.Join("collateral", name), b)
	}
	for name, b := range p.Collateral(t, sgxtest.CollateralOptions{PlatformStatus: intel.OutOfDate, Advisories: []string{"INTEL-SA-00837"}}) {
		write(filepath.Join("collateral_outofdate", name), b)
	}
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixtureRoot(t testing.TB) *x509.Certificate {
	blk, _ := pem.Decode(readFixture(t, "root.pem"))
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFixtures is what `trustctl evidence verify --tee sgx` sees for each committed quote.
func TestFixtures(t *testing.T) {
	root := fixtureRoot(t)
	tests := []struct {
		quote, dir string
		opts       Options
		status     string
		kind       error
		field      string
	}{
		{quote: "quote_v3.bin", status: "unknown"},
		{quote: "quote_v4.bin", status: "unknown"},
		{quote: "quote_v5.bin", status: "unknown"},
		{quote: "quote_v3.bin", dir: "collateral", status: "UpToDate"},
		{quote: "quote_v4.bin", dir: "collateral_outofdate", kind: attest.ErrNotAuthentic, field: "tcb_status"},
		{quote: "quote_v4.bin", dir: "collateral_outofdate", opts: Options{AllowOutOfDate: true}, status: "OutOfDate"},
		{quote: "quote_debug.bin", status: "unknown"},
		{quote: "quote_other_root.bin", kind: attest.ErrNotAuthentic, field: "quote.pck_chain"},
		{quote: "tdx_prod_quote_SPR_E4.dat", kind: attest.ErrMalformed, field: "quote.header.tee_type"},
	}
	for _, tt := range tests {
		t.Run(tt.quote+"+"+tt.dir, func(t *testing.T) {
			o := tt.opts
			o.Root = root
			if tt.dir != "" {
				o.CollateralDir = filepath.Join("testdata", tt.dir)
			}
			v, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(context.Background(), sgxEvidence(readFixture(t, tt.quote)), attest.Options{Now: sgxtest.Now})
			if tt.kind != nil {
				wantErr(t, err, tt.kind, tt.field)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.TCBStatus != tt.status {
				t.Errorf("tcb_status %q, want %q", c.TCBStatus, tt.status)
			}
		})
	}
}

// The real TDX quote from go-tdx-guest carries a real PCK chain, QE report and attestation key
// made by an Intel platform. Its authentication (everything but the body) is the same as an SGX
// quote's, so it checks authenticate against real Intel bytes and the embedded Intel root.
func TestRealIntelAuthentication(t *testing.T) {
	// A TDX v4 quote: header (48), TD report (584), signature data length (4), then signature,
	// attestation key and type-6 certification data laid out as in an SGX v4 quote.
	b := readFixture(t, "tdx_prod_quote_SPR_E4.dat")
	const signedLen = 48 + 584
	sigLen := int(binary.LittleEndian.Uint32(b[signedLen:]))
	sd := b[signedLen+4 : signedLen+4+sigLen]
	q := &Quote{Signed: b[:signedLen], Signature: sd[:64], AttestationKey: sd[64:128]}
	inner, err := certData(sd[128:], certTypeQEReport, "quote.certification_data")
	if err != nil {
		t.Fatal(err)
	}
	if err := q.ParseQEReportCertData(inner); err != nil {
		t.Fatal(err)
	}
	v, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2023, 6, 20, 0, 0, 0, 0, time.UTC)
	_, info, err := v.authenticate(q, at)
	if err != nil {
		t.Fatal(err)
	}
	if info.CA != intel.CAPlatform || info.Ext.FMSPCHex() == "" {
		t.Errorf("real PCK: CA %q FMSPC %q", info.CA, info.Ext.FMSPCHex())
	}
	qe, err := ParseReportBody(q.QEReport)
	// Intel's quoting enclaves are signed by Intel's MRSIGNER; the TD QE has product ID 2.
	if err != nil || qe.ISVProdID != 2 || qe.Debug() || hex.EncodeToString(qe.MRSIGNER[:]) != "dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5" {
		t.Errorf("real QE report: %+v, %v", qe, err)
	}

	// One flipped bit anywhere signed is a denial; under a test root the real chain is foreign.
	bad := *q
	bad.QEReportSignature = append([]byte{}, q.QEReportSignature...)
	bad.QEReportSignature[10] ^= 1
	if _, _, err := v.authenticate(&bad, at); !errors.Is(err, attest.ErrNotAuthentic) {
		t.Errorf("flipped QE report signature: %v", err)
	}
	vt, _ := New(Options{Root: fixtureRoot(t)})
	if _, _, err := vt.authenticate(q, at); !errors.Is(err, attest.ErrNotAuthentic) {
		t.Errorf("real chain under a test root: %v", err)
	}
}
