package tdx_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/tdx"
	"github.com/medicus-cloud/trust/attest/tdx/tdxtest"
)

var fixture = sync.OnceValues(tdxtest.NewFixture)

// collateralPair is the fixture's collateral, and the same with its PCK revoked.
func collateralPair(t testing.TB, f *tdxtest.Fixture) (good, revoked *intel.Collateral) {
	t.Helper()
	good, err := f.Collateral(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if revoked, err = f.Collateral(nil, nil, true); err != nil {
		t.Fatal(err)
	}
	return good, revoked
}

func fx(t testing.TB) *tdxtest.Fixture {
	t.Helper()
	f, err := fixture()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// realQuote is a production v4 quote from a Sapphire Rapids E4 platform (go-tdx-guest testdata).
func realQuote(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/tdx_prod_quote_SPR_E4.dat")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// realTime is inside the validity of the real quote's PCK chain and its collateral.
var realTime = time.Date(2023, 7, 1, 1, 0, 0, 0, time.UTC)

func ev(q []byte, coll *intel.Collateral) *attest.Evidence {
	e := &attest.Evidence{TEE: attest.TDX, Report: q}
	if coll != nil {
		e.Collateral = coll.Map()
	}
	return e
}

func mustNew(t testing.TB, o tdx.Options) *tdx.Verifier {
	t.Helper()
	v, err := tdx.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantErr(t *testing.T, err error, kind error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("verified; want %v at %s", kind, field)
	}
	var ae *attest.Error
	if !errors.As(err, &ae) || !errors.Is(err, kind) || ae.Field != field {
		t.Fatalf("got %v; want %v at field %q", err, kind, field)
	}
}

func TestRealQuote(t *testing.T) {
	q := realQuote(t)
	ctx := context.Background()

	t.Run("no collateral", func(t *testing.T) {
		c, err := mustNew(t, tdx.Options{}).Verify(ctx, ev(q, nil), attest.Options{Now: realTime})
		if err != nil {
			t.Fatal(err)
		}
		if c.TCBStatus != "unknown" || c.Platform["fmspc"] != "50806f000000" || c.Platform["signer"] != "pck" || c.Debug {
			t.Errorf("claims %+v", c)
		}
		if got := c.Measurement.String(); !strings.HasPrefix(got, "6363b8043668a3ad") || len(got) != 96 {
			t.Errorf("measurement %s", got)
		}
		if len(c.Measurements) != 6 || len(c.Config) != 7 || len(c.ReportData) != 64 { // 7: the QE fields a release recomputes the TCB status from
			t.Errorf("claims maps %v %v", c.Measurements, c.Config)
		}
	})
	t.Run("collateral does not cover this TCB", func(t *testing.T) {
		// Intel's sample TCB info requires TDX component 2 at SVN 5; this quote has 4, so no TCB
		// level matches (go-tdx-guest's own test says the same). Every signature still checks.
		v := mustNew(t, tdx.Options{CollateralDir: "testdata/spr_e4"})
		_, err := v.Verify(ctx, ev(q, nil), attest.Options{Now: realTime})
		wantErr(t, err, attest.ErrNotAuthentic, "tcb_status")
	})
	t.Run("collateral expired", func(t *testing.T) {
		v := mustNew(t, tdx.Options{CollateralDir: "testdata/spr_e4"})
		_, err := v.Verify(ctx, ev(q, nil), attest.Options{Now: realTime.AddDate(0, 1, 0)})
		wantErr(t, err, attest.ErrNotAuthentic, "collateral.tcbinfo.json")
	})
	t.Run("pck chain expired", func(t *testing.T) {
		_, err := mustNew(t, tdx.Options{}).Verify(ctx, ev(q, nil), attest.Options{Now: realTime.AddDate(40, 0, 0)})
		wantErr(t, err, attest.ErrNotAuthentic, "quote.pck_chain")
	})
	t.Run("chain to another root", func(t *testing.T) {
		_, err := mustNew(t, tdx.Options{Root: fx(t).PKI.Root}).Verify(ctx, ev(q, nil), attest.Options{Now: realTime})
		wantErr(t, err, attest.ErrNotAuthentic, "quote.pck_chain")
	})
	t.Run("tampered TCB info", func(t *testing.T) {
		c, err := intel.ReadDir("testdata/spr_e4")
		if err != nil {
			t.Fatal(err)
		}
		c.TCBInfo = bytes.Replace(c.TCBInfo, []byte(`"tcbStatus":"OutOfDate"`), []byte(`"tcbStatus":"UpToDate"`), 1)
		_, err = mustNew(t, tdx.Options{}).Verify(ctx, ev(q, c), attest.Options{Now: realTime})
		wantErr(t, err, attest.ErrNotAuthentic, "collateral.tcbinfo.json")
	})
}

// TestParseMatchesLibrary checks our v4 parser against go-tdx-guest's.
func TestParseMatchesLibrary(t *testing.T) {
	for name, q := range map[string][]byte{"real": realQuote(t), "signed": fx(t).Quote(fx(t).DefaultSpec())} {
		t.Run(name, func(t *testing.T) {
			ours, err := tdx.ParseQuote(q)
			if err != nil {
				t.Fatal(err)
			}
			anyq, err := abi.QuoteToProto(q)
			if err != nil {
				t.Fatal(err)
			}
			lib := anyq.(*pb.QuoteV4)
			b := lib.GetTdQuoteBody()
			cd := lib.GetSignedData().GetCertificationData().GetQeReportCertificationData()
			for _, c := range []struct {
				name      string
				got, want []byte
			}{
				{"mrtd", ours.Body.MRTD[:], b.GetMrTd()},
				{"mrseam", ours.Body.MRSEAM[:], b.GetMrSeam()},
				{"tee_tcb_svn", ours.Body.TEETCBSVN[:], b.GetTeeTcbSvn()},
				{"td_attributes", ours.Body.TDAttributes[:], b.GetTdAttributes()},
				{"xfam", ours.Body.XFAM[:], b.GetXfam()},
				{"rtmr3", ours.Body.RTMR[3][:], b.GetRtmrs()[3]},
				{"report_data", ours.Body.ReportData[:], b.GetReportData()},
				{"signature", ours.Signature, lib.GetSignedData().GetSignature()},
				{"attestation_key", ours.AttestationKey, lib.GetSignedData().GetEcdsaAttestationKey()},
				{"qe_auth", ours.QEAuthData, cd.GetQeAuthData().GetData()},
				{"qe_report_sig", ours.QEReportSignature, cd.GetQeReportSignature()},
				{"pck_chain", ours.PCKChain, cd.GetPckCertificateChainData().GetPckCertChain()},
			} {
				if !bytes.Equal(c.got, c.want) {
					t.Errorf("%s differs: %x vs %x", c.name, c.got, c.want)
				}
			}
			qe, _ := abi.EnclaveReportToAbiBytes(cd.GetQeReport())
			if !bytes.Equal(ours.QEReport, qe) {
				t.Error("QE report differs")
			}
		})
	}
}

func TestVerify(t *testing.T) {
	f := fx(t)
	ctx := context.Background()
	good, revoked := collateralPair(t, f)
	upperFMSPC := f.TCBInfo()
	upperFMSPC.FMSPC = strings.ToUpper(upperFMSPC.FMSPC)
	upper, err := f.Collateral(upperFMSPC, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	badQE := f.QEIdentity()
	badQE.ISVProdID = 3
	wrongQE, err := f.Collateral(nil, badQE, false)
	if err != nil {
		t.Fatal(err)
	}
	otherFMSPC := f.TCBInfo()
	otherFMSPC.FMSPC = "00906ed50000"
	other, err := f.Collateral(otherFMSPC, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	qeRevoked := f.QEIdentity()
	qeRevoked.TCBLevels = append([]intel.TCBLevel{{TCB: intel.TCB{ISVSVN: 5}, TCBStatus: intel.UpToDate}}, intel.TCBLevel{TCB: intel.TCB{ISVSVN: 0}, TCBStatus: intel.Revoked, AdvisoryIDs: []string{"INTEL-SA-00003"}})
	qeRev, err := f.Collateral(nil, qeRevoked, false)
	if err != nil {
		t.Fatal(err)
	}

	spec := func(mod func(*tdxtest.QuoteSpec)) []byte {
		s := f.DefaultSpec()
		if mod != nil {
			mod(&s)
		}
		return f.Quote(s)
	}
	tests := []struct {
		name       string
		quote      []byte
		coll       *intel.Collateral
		opts       tdx.Options
		at         time.Time
		wantKind   error
		wantField  string
		wantStatus string
		wantAdv    string
	}{
		{name: "v4 without collateral", quote: spec(nil), wantStatus: "unknown"},
		{name: "v4 up to date", quote: spec(nil), coll: good, wantStatus: "UpToDate"},
		{name: "v5 TD 1.0", quote: spec(func(s *tdxtest.QuoteSpec) { s.Version = 5 }), coll: good, wantStatus: "UpToDate"},
		{name: "v5 TD 1.5", quote: spec(func(s *tdxtest.QuoteSpec) { s.Version, s.TD15 = 5, true; s.Body.MRSERVICETD[0] = 9 }), coll: good, wantStatus: "UpToDate"},
		{name: "upper-case FMSPC in TCB info", quote: spec(nil), coll: upper, wantStatus: "UpToDate"},
		// A debug TD's quote is authentic: it verifies and says Debug (TestDebugTDVerifies).
		{name: "debug TD", quote: spec(func(s *tdxtest.QuoteSpec) { s.Body.TDAttributes[0] = 1 }), wantStatus: "unknown"},
		{name: "out of date TCB", quote: spec(func(s *tdxtest.QuoteSpec) { s.Body.TEETCBSVN[2] = 4 }), coll: good, wantKind: attest.ErrNotAuthentic, wantField: "tcb_status"},
		{name: "out of date TCB allowed", quote: spec(func(s *tdxtest.QuoteSpec) { s.Body.TEETCBSVN[2] = 4 }), coll: good, opts: tdx.Options{AllowOutOfDate: true}, wantStatus: "OutOfDate", wantAdv: "INTEL-SA-00001"},
		{name: "module 1.x current", quote: spec(func(s *tdxtest.QuoteSpec) { s.Body.TEETCBSVN = [16]byte{2, 1, 5} }), coll: good, wantStatus: "UpToDate"},
		{name: "module 1.x out of date", quote: spec(func(s *tdxtest.QuoteSpec) { s.Body.TEETCBSVN = [16]byte{1, 1, 5} }), coll: good, opts: tdx.Options{AllowOutOfDate: true}, wantStatus: "OutOfDate", wantAdv: "INTEL-SA-00002"},
		{name: "module 2.x unknown to TCB info", quote: spec(func(s *tdxtest.QuoteSpec) { s.Body.TEETCBSVN = [16]byte{2, 2, 5} }), coll: good, wantKind: attest.ErrNotAuthentic, wantField: "quote.body.tdx_module"},
		{name: "module signer not Intel", quote: spec(func(s *tdxtest.QuoteSpec) { s.Body.MRSIGNERSEAM[0] = 1 }), coll: good, wantKind: attest.ErrNotAuthentic, wantField: "quote.body.tdx_module"},
		{name: "TD 1.5 relaunch advised", quote: spec(func(s *tdxtest.QuoteSpec) {
			s.Version, s.TD15 = 5, true
			s.Body.TEETCBSVN, s.Body.TEETCBSVN2 = [16]byte{1, 1, 5}, [16]byte{2, 1, 5}
		}), coll: good, opts: tdx.Options{AllowOutOfDate: true}, wantStatus: "TDRelaunchAdvised", wantAdv: "INTEL-SA-00002"},
		{name: "TD 1.5 relaunch advised is denied by default", quote: spec(func(s *tdxtest.QuoteSpec) {
			s.Version, s.TD15 = 5, true
			s.Body.TEETCBSVN, s.Body.TEETCBSVN2 = [16]byte{1, 1, 5}, [16]byte{2, 1, 5}
		}), coll: good, wantKind: attest.ErrNotAuthentic, wantField: "tcb_status"},
		{name: "TD 1.5 module still out of date", quote: spec(func(s *tdxtest.QuoteSpec) {
			s.Version, s.TD15 = 5, true
			s.Body.TEETCBSVN, s.Body.TEETCBSVN2 = [16]byte{1, 1, 5}, [16]byte{1, 1, 5}
		}), coll: good, opts: tdx.Options{AllowOutOfDate: true}, wantStatus: "OutOfDate", wantAdv: "INTEL-SA-00002"},
		{name: "SEAM attributes set", quote: spec(func(s *tdxtest.QuoteSpec) { s.Body.SEAMAttributes[0] = 1 }), coll: good, wantKind: attest.ErrNotAuthentic, wantField: "quote.body.tdx_module"},
		{name: "QE revoked", quote: spec(nil), coll: qeRev, wantKind: attest.ErrNotAuthentic, wantField: "tcb_status"},
		{name: "QE not Intel's", quote: spec(nil), coll: wrongQE, wantKind: attest.ErrNotAuthentic, wantField: "quote.qe_report"},
		{name: "revoked PCK", quote: spec(nil), coll: revoked, wantKind: attest.ErrNotAuthentic, wantField: "quote.pck_chain.revoked"},
		{name: "collateral for another FMSPC", quote: spec(nil), coll: other, wantKind: attest.ErrNotAuthentic, wantField: "collateral.tcbinfo.json"},
		{name: "expired collateral", quote: spec(nil), coll: good, at: f.Now.AddDate(0, 2, 0), wantKind: attest.ErrNotAuthentic, wantField: "collateral.rootcrl.der"},
		{name: "collateral required", quote: spec(nil), opts: tdx.Options{RequireCollateral: true}, wantKind: attest.ErrUnavailable, wantField: "collateral"},
		{name: "PCK chain to the Intel root", quote: spec(nil), opts: tdx.Options{Root: intel.IntelRoot()}, wantKind: attest.ErrNotAuthentic, wantField: "quote.pck_chain"},
		{name: "QE not Intel's, no collateral", quote: spec(func(s *tdxtest.QuoteSpec) { s.QE.MRSIGNER[0] ^= 1 }), wantKind: attest.ErrNotAuthentic, wantField: "quote.qe_report.mrsigner"},
		{name: "QE of another product", quote: spec(func(s *tdxtest.QuoteSpec) { s.QE.ISVProdID = 1 }), wantKind: attest.ErrNotAuthentic, wantField: "quote.qe_report.isv_prod_id"},
		{name: "debug QE", quote: spec(func(s *tdxtest.QuoteSpec) { s.QE.Attributes[0] |= 2 }), wantKind: attest.ErrNotAuthentic, wantField: "quote.qe_report.attributes"},
		{name: "QE signed by another key", quote: spec(func(s *tdxtest.QuoteSpec) { s.PCKKey = f.AK }), wantKind: attest.ErrNotAuthentic, wantField: "quote.qe_report_signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			if o.Root == nil {
				o.Root = f.PKI.Root
			}
			at := tc.at
			if at.IsZero() {
				at = f.Now
			}
			c, err := mustNew(t, o).Verify(ctx, ev(tc.quote, tc.coll), attest.Options{Now: at})
			if tc.wantKind != nil {
				wantErr(t, err, tc.wantKind, tc.wantField)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.TCBStatus != tc.wantStatus || strings.Join(c.Advisories, ",") != tc.wantAdv {
				t.Errorf("status %q advisories %v; want %q %q", c.TCBStatus, c.Advisories, tc.wantStatus, tc.wantAdv)
			}
			if c.Measurement[0] != 0x11 || c.Measurements["rtmr0"][0] != 0x20 || c.Platform["fmspc"] != "90c06f000000" || c.PlatformSMTEnabled != attest.TriTrue {
				t.Errorf("claims %+v", c)
			}
		})
	}
}

func TestCollateralDir(t *testing.T) {
	f := fx(t)
	c, err := f.Collateral(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := c.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	v := mustNew(t, tdx.Options{Root: f.PKI.Root, CollateralDir: dir})
	for range 2 { // second time from the cached verification
		got, err := v.Verify(context.Background(), ev(f.Quote(f.DefaultSpec()), nil), attest.Options{Now: f.Now})
		if err != nil || got.TCBStatus != "UpToDate" {
			t.Fatalf("%v %v", got, err)
		}
	}
	if _, err := v.Verify(context.Background(), ev(f.Quote(f.DefaultSpec()), nil), attest.Options{Now: f.Now.AddDate(1, 0, 0)}); err == nil {
		t.Fatal("expired collateral accepted from the cache")
	}
	os.Remove(filepath.Join(dir, intel.FilePCKCRL))
	if _, err := tdx.New(tdx.Options{CollateralDir: dir}); err == nil || !strings.Contains(err.Error(), intel.FilePCKCRL) {
		t.Fatalf("incomplete directory: %v", err)
	}
}

// TestBadBytes flips bytes in every region of a quote, truncates it and changes its version:
// each is denied, naming the region, and nothing panics.
func TestBadBytes(t *testing.T) {
	f := fx(t)
	q := f.Quote(f.DefaultSpec())
	pq, err := tdx.ParseQuote(q)
	if err != nil {
		t.Fatal(err)
	}
	off := func(sub []byte) int { return bytes.Index(q, sub) }
	v := mustNew(t, tdx.Options{Root: f.PKI.Root})
	flip := func(i int) []byte {
		b := bytes.Clone(q)
		b[i] ^= 0x01
		return b
	}
	pckOff := off(pq.PCKChain)
	tests := []struct {
		name  string
		quote []byte
		kind  error
		field string
	}{
		{"body mrtd", flip(48 + 136), attest.ErrNotAuthentic, "quote.signature"},
		{"body report data", flip(48 + 520), attest.ErrNotAuthentic, "quote.signature"},
		{"header user data", flip(30), attest.ErrNotAuthentic, "quote.signature"},
		{"signature", flip(off(pq.Signature) + 5), attest.ErrNotAuthentic, "quote.signature"},
		{"attestation key", flip(off(pq.AttestationKey) + 3), attest.ErrNotAuthentic, "quote.attestation_key"},
		{"qe report", flip(off(pq.QEReport) + 64), attest.ErrNotAuthentic, "quote.qe_report_signature"},
		{"qe report signature", flip(off(pq.QEReportSignature) + 1), attest.ErrNotAuthentic, "quote.qe_report_signature"},
		{"qe auth data", flip(off(pq.QEAuthData)), attest.ErrNotAuthentic, "quote.qe_report.report_data"},
		{"pck certificate", flip(pckOff + 200), attest.ErrNotAuthentic, "quote.pck_chain"},
		{"pck certificate signature", flip(pckOff + len(pq.PCKChain)/3 - 40), attest.ErrNotAuthentic, "quote.pck_chain"},
		{"version 3", append([]byte{3}, q[1:]...), attest.ErrMalformed, "quote.header.version"},
		{"version 6", append([]byte{6}, q[1:]...), attest.ErrMalformed, "quote.header.version"},
		{"sgx tee type", append(append(bytes.Clone(q[:4]), 0, 0, 0, 0), q[8:]...), attest.ErrMalformed, "quote.header.tee_type"},
		{"empty", nil, attest.ErrMalformed, "quote.header"},
		{"header only", q[:48], attest.ErrMalformed, "quote.body"},
		{"oversized", make([]byte, tdx.MaxQuoteSize+1), attest.ErrMalformed, "quote"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), ev(tc.quote, nil), attest.Options{Now: f.Now})
			wantErr(t, err, tc.kind, tc.field)
		})
	}
	// Every truncation is malformed; none panics.
	for n := range len(q) {
		if _, err := v.Verify(context.Background(), ev(q[:n], nil), attest.Options{Now: f.Now}); !errors.Is(err, attest.ErrMalformed) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
}

func TestEvidenceFromFile(t *testing.T) {
	q := realQuote(t)
	for name, b := range map[string][]byte{
		"raw":    q,
		"hex":    []byte(hex.EncodeToString(q) + "\n"),
		"base64": []byte(base64.StdEncoding.EncodeToString(q)),
	} {
		e, err := tdx.EvidenceFromFile(b)
		if err != nil || !bytes.Equal(e.Report, q) || e.TEE != attest.TDX {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, b := range map[string][]byte{"empty": nil, "text": []byte("hello"), "truncated hex": []byte(hex.EncodeToString(q[:600]))} {
		if _, err := tdx.EvidenceFromFile(b); !errors.Is(err, attest.ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestNotTDX(t *testing.T) {
	v := mustNew(t, tdx.Options{})
	for _, e := range []*attest.Evidence{nil, {TEE: attest.SEVSNP, Report: realQuote(t)}} {
		_, err := v.Verify(context.Background(), e, attest.Options{})
		wantErr(t, err, attest.ErrMalformed, "evidence.tee")
	}
	if v.TEE() != attest.TDX {
		t.Error("TEE")
	}
}

// TestConcurrent verifies from many goroutines through one Verifier (run with -race).
func TestConcurrent(t *testing.T) {
	f := fx(t)
	c, err := f.Collateral(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	v := mustNew(t, tdx.Options{Root: f.PKI.Root})
	q := f.Quote(f.DefaultSpec())
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := ev(q, nil)
			if i%2 == 0 {
				e = ev(q, c)
			}
			if _, err := v.Verify(context.Background(), e, attest.Options{Now: f.Now}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// Issue 14 item 9: a debug TD is authentic; verification reports it and leaves refusing it to
// trustd's baseline.
func TestDebugTDVerifies(t *testing.T) {
	f := fx(t)
	s := f.DefaultSpec()
	s.Body.TDAttributes[0] = 1
	c, err := mustNew(t, tdx.Options{Root: f.PKI.Root}).Verify(context.Background(), ev(f.Quote(s), nil), attest.Options{Now: f.Now})
	if err != nil {
		t.Fatalf("debug TD refused by verification: %v", err)
	}
	if !c.Debug || c.Attributes["td_attributes"]&1 == 0 {
		t.Fatalf("debug TD reported Debug=%v td_attributes=%#x", c.Debug, c.Attributes["td_attributes"])
	}
}

// Issue 14 item 6: a PCK certificate without the configuration extension leaves SMT unknown,
// not off.
func TestSMTUnknownWithoutPCKConfiguration(t *testing.T) {
	f, err := tdxtest.NewFixture()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		smt  *bool
		want attest.Tristate
	}{{"no configuration extension", nil, attest.TriUnknown}, {"smt off", new(false), attest.TriFalse}, {"smt on", new(true), attest.TriTrue}} {
		t.Run(tc.name, func(t *testing.T) {
			spec := f.Spec
			spec.SMT = tc.smt
			pck, key, err := f.PKI.NewPCK(spec)
			if err != nil {
				t.Fatal(err)
			}
			s := f.DefaultSpec()
			s.PCKChain, s.PCKKey = f.PKI.PCKChain(pck), key
			c, err := mustNew(t, tdx.Options{Root: f.PKI.Root}).Verify(context.Background(), ev(f.Quote(s), nil), attest.Options{Now: f.Now})
			if err != nil {
				t.Fatal(err)
			}
			if c.PlatformSMTEnabled != tc.want {
				t.Fatalf("platform_smt_enabled %q, want %q", c.PlatformSMTEnabled, tc.want)
			}
		})
	}
}

// TestQECacheFailsClosed: once a platform's QE report signature has verified, a quote with a
// changed QE report or signature is still rejected (the cache is keyed by the exact bytes).
func TestQECacheFailsClosed(t *testing.T) {
	f := fx(t)
	q := f.Quote(f.DefaultSpec())
	pq, err := tdx.ParseQuote(q)
	if err != nil {
		t.Fatal(err)
	}
	v := mustNew(t, tdx.Options{Root: f.PKI.Root})
	if _, err := v.Verify(context.Background(), ev(q, nil), attest.Options{Now: f.Now}); err != nil && errors.Is(err, attest.ErrNotAuthentic) {
		t.Fatal(err)
	}
	for _, sub := range [][]byte{pq.QEReport, pq.QEReportSignature} {
		b := bytes.Clone(q)
		b[bytes.Index(q, sub)+1] ^= 0x01
		for range 2 {
			_, err := v.Verify(context.Background(), ev(b, nil), attest.Options{Now: f.Now})
			wantErr(t, err, attest.ErrNotAuthentic, "quote.qe_report_signature")
		}
	}
}
