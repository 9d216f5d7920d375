package azure_test

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure"
	"github.com/medicus-cloud/trust/attest/azure/azuretest"
	"github.com/medicus-cloud/trust/attest/snp"
	"github.com/medicus-cloud/trust/attest/tdx"
	"github.com/medicus-cloud/trust/attest/tdx/tdxtest"
	"github.com/medicus-cloud/trust/enclave/aztpm"
	"github.com/medicus-cloud/trust/internal/swtpmtest"
)

// newAK makes an attestation key like Azure's on the simulator.
// Primary keys derive from the hierarchy seed and the template, so seed picks the key.
func newAK(t testing.TB, tpm transport.TPM, seed byte) (tpm2.TPMHandle, *rsa.PublicKey) {
	t.Helper()
	tmpl := aztpm.AKTemplate
	unique := make([]byte, 256)
	unique[0] = seed
	tmpl.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: unique})
	r, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHEndorsement, InPublic: tpm2.New2B(tmpl)}.Execute(tpm)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := r.OutPublic.Contents()
	if err != nil {
		t.Fatal(err)
	}
	k, err := tpm2.RSAPub(mustRSAParms(t, pub), mustRSAUnique(t, pub))
	if err != nil {
		t.Fatal(err)
	}
	return r.ObjectHandle, k
}

func mustRSAParms(t testing.TB, p *tpm2.TPMTPublic) *tpm2.TPMSRSAParms {
	d, err := p.Parameters.RSADetail()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustRSAUnique(t testing.TB, p *tpm2.TPMTPublic) *tpm2.TPM2BPublicKeyRSA {
	u, err := p.Unique.RSA()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

var allPCRs = []uint{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}

// env is a simulated Azure SEV-SNP CVM: swtpm with an AK, a fake AMD hierarchy, and the request's
// binding.
type env struct {
	tpm     transport.TPM
	ak      tpm2.TPMHandle
	akPub   *rsa.PublicKey
	fx      *azuretest.SNPFixture
	binding [64]byte
	v       *azure.Verifier
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{tpm: swtpmtest.Start(t)}
	e.ak, e.akPub = newAK(t, e.tpm, 0)
	var err error
	if e.fx, err = azuretest.NewSNPFixture(); err != nil {
		t.Fatal(err)
	}
	// Something measured, as the boot chain would.
	if _, err := (tpm2.PCRExtend{PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(8), Auth: tpm2.PasswordAuth(nil)},
		Digests: tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: make([]byte, 32)}}}}).Execute(e.tpm); err != nil {
		t.Fatal(err)
	}
	e.binding = attest.ReportData([]byte("nonce-0123456789"), []byte{0, 0x20, 0, 1, 0, 3}, []byte("workload public key"))
	sv, err := snp.New(snp.Options{Roots: e.fx.Roots, Revocation: snp.InsecureRevocationSkip})
	if err != nil {
		t.Fatal(err)
	}
	e.v = azure.NewSNP(sv)
	return e
}

// hcl makes an HCL report whose runtime data names ak (signed REPORT_DATA over reportDataOf, or
// over the runtime data when nil).
func (e *env) hcl(t testing.TB, ak *rsa.PublicKey, vmpl uint32, reportDataOf []byte) []byte {
	t.Helper()
	rt := azuretest.RuntimeData(ak, make([]byte, 64))
	if reportDataOf == nil {
		reportDataOf = rt
	}
	var rd [64]byte
	d := sha256.Sum256(reportDataOf)
	copy(rd[:], d[:])
	rep, err := e.fx.Report(rd, vmpl)
	if err != nil {
		t.Fatal(err)
	}
	return azuretest.HCLReport(azuretest.ReportTypeSNP, rep, rt)
}

func (e *env) quote(t testing.TB, ak tpm2.TPMHandle, qd []byte, pcrs []uint) azure.Quote {
	t.Helper()
	q, err := aztpm.Quote(e.tpm, ak, qd, pcrs)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func (e *env) evidence(t testing.TB) *azure.Evidence {
	return &azure.Evidence{TEE: azure.SNP, HCLReport: e.hcl(t, e.akPub, 0, nil),
		Quote: e.quote(t, e.ak, azure.QualifyingData(e.binding), allPCRs), VCEK: e.fx.VCEK()}
}

func (e *env) verify(ev *azure.Evidence) (*attest.Claims, error) {
	return e.v.VerifyEvidence(context.Background(), ev, nil, attest.Options{Now: azuretest.Now})
}

func TestSNPWithSimulator(t *testing.T) {
	e := newEnv(t)
	good := e.evidence(t)
	c, err := e.verify(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := azure.CheckBinding(c, e.binding); err != nil {
		t.Fatal(err)
	}
	if c.TEE != azure.SNP || c.Platform["paravisor"] != azure.Paravisor || len(c.Measurements) != 24 || c.Attributes[snp.ClaimVMPL] != 0 {
		t.Errorf("claims %+v", c)
	}
	pcrs, err := aztpm.ReadPCRs(e.tpm, []uint{8})
	if err != nil {
		t.Fatal(err)
	}
	if c.Measurements["pcr8"].String() != attest.Hex(pcrs[8]).String() || c.Measurements["pcr8"].String() == attest.Hex(make([]byte, 32)).String() {
		t.Errorf("pcr8 %s", c.Measurements["pcr8"])
	}
	// Our encoding round-trips through Verify (the attest.Verifier entry point).
	doc, err := good.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.v.Verify(context.Background(), &attest.Evidence{TEE: azure.SNP, Report: doc}, attest.Options{Now: azuretest.Now}); err != nil {
		t.Fatal(err)
	}

	otherAK, otherPub := newAK(t, e.tpm, 1)
	tests := []struct {
		name  string
		ev    func() *azure.Evidence
		kind  error
		field string
	}{
		{"quote over other PCRs", func() *azure.Evidence {
			ev := *good
			ev.Quote = e.quote(t, e.ak, azure.QualifyingData(e.binding), []uint{0, 1, 2, 3, 4, 5, 6, 7})
			ev.Quote.PCRs = good.Quote.PCRs
			return &ev
		}, attest.ErrNotAuthentic, "tpm_quote.pcrs"},
		{"PCR value changed", func() *azure.Evidence {
			ev := *good
			ev.Quote.PCRs = map[uint32][]byte{}
			for i, v := range good.Quote.PCRs {
				ev.Quote.PCRs[i] = v
			}
			ev.Quote.PCRs[8] = make([]byte, 32)
			return &ev
		}, attest.ErrNotAuthentic, "tpm_quote.pcr_digest"},
		{"quote signed by another key", func() *azure.Evidence {
			ev := *good
			ev.Quote = e.quote(t, otherAK, azure.QualifyingData(e.binding), allPCRs)
			return &ev
		}, attest.ErrNotAuthentic, "tpm_quote.signature"},
		{"runtime data names another AK", func() *azure.Evidence {
			ev := *good
			ev.HCLReport = e.hcl(t, otherPub, 0, nil)
			return &ev
		}, attest.ErrNotAuthentic, "tpm_quote.signature"},
		{"runtime data not in REPORT_DATA", func() *azure.Evidence {
			ev := *good
			ev.HCLReport = e.hcl(t, e.akPub, 0, []byte("other runtime data"))
			return &ev
		}, attest.ErrNotAuthentic, "runtime_data"},
		{"AK not in the runtime data", func() *azure.Evidence {
			ev := *good
			ev.HCLReport = e.hcl(t, nil, 0, nil)
			return &ev
		}, attest.ErrNotAuthentic, "runtime_data.keys"},
		{"truncated HCL report", func() *azure.Evidence {
			ev := *good
			ev.HCLReport = good.HCLReport[:1000]
			return &ev
		}, attest.ErrMalformed, "hcl_report"},
		{"runtime data cut short", func() *azure.Evidence {
			ev := *good
			ev.HCLReport = good.HCLReport[:1300]
			return &ev
		}, attest.ErrMalformed, "hcl_report.variable_data_size"},
		{"report from VMPL 1", func() *azure.Evidence {
			ev := *good
			ev.HCLReport = e.hcl(t, e.akPub, 1, nil)
			return &ev
		}, attest.ErrNotAuthentic, "hcl_report.vmpl"},
		{"SNP report tampered", func() *azure.Evidence {
			ev := *good
			ev.HCLReport = append([]byte(nil), good.HCLReport...)
			ev.HCLReport[32+0x90] ^= 1
			return &ev
		}, attest.ErrNotAuthentic, "hcl_report.report.signature"},
		{"quote message tampered", func() *azure.Evidence {
			ev := *good
			ev.Quote.Attest = append([]byte(nil), good.Quote.Attest...)
			ev.Quote.Attest[len(ev.Quote.Attest)-1] ^= 1
			return &ev
		}, attest.ErrNotAuthentic, "tpm_quote.signature"},
		{"TDX report in SNP evidence", func() *azure.Evidence {
			ev := *good
			ev.HCLReport = azuretest.HCLReport(azuretest.ReportTypeTDX, make([]byte, 1024), azuretest.RuntimeData(e.akPub, nil))
			return &ev
		}, attest.ErrMalformed, "hcl_report.report_type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.verify(tc.ev())
			wantErr(t, err, tc.kind, tc.field)
		})
	}

	t.Run("nonce mismatch", func(t *testing.T) {
		other := attest.ReportData([]byte("another nonce"), []byte{0, 0x20, 0, 1, 0, 3}, []byte("workload public key"))
		wantErr(t, azure.CheckBinding(c, other), attest.ErrNotAuthentic, "tpm_quote.extra_data")
	})
	t.Run("key mismatch", func(t *testing.T) {
		other := attest.ReportData([]byte("nonce-0123456789"), []byte{0, 0x20, 0, 1, 0, 3}, []byte("another key"))
		wantErr(t, azure.CheckBinding(c, other), attest.ErrNotAuthentic, "tpm_quote.extra_data")
	})
}

// TestTDXWithSimulator builds Azure TDX evidence: a TD quote under tdxtest's test PKI whose
// REPORTDATA commits to the runtime data, the same TD report in the HCL report, and a swtpm quote.
func TestTDXWithSimulator(t *testing.T) {
	e := newEnv(t)
	fx, err := tdxtest.NewFixture()
	if err != nil {
		t.Fatal(err)
	}
	tv, err := tdx.New(tdx.Options{Root: fx.PKI.Root})
	if err != nil {
		t.Fatal(err)
	}
	v := azure.NewTDX(tv)
	rt := azuretest.RuntimeData(e.akPub, nil)
	spec := fx.DefaultSpec()
	d := sha256.Sum256(rt)
	copy(spec.Body.ReportData[:], d[:])
	tdq := fx.Quote(spec)
	ev := &azure.Evidence{TEE: azure.TDX, HCLReport: azuretest.HCLReport(azuretest.ReportTypeTDX, azuretest.TDReport(spec.Body.ReportData, spec.Body.MRTD), rt),
		Quote: e.quote(t, e.ak, azure.QualifyingData(e.binding), allPCRs), TDQuote: tdq}
	ctx := context.Background()
	c, err := v.VerifyEvidence(ctx, ev, nil, attest.Options{Now: fx.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := azure.CheckBinding(c, e.binding); err != nil {
		t.Fatal(err)
	}
	if c.TEE != azure.TDX || c.Measurement.String() != attest.Hex(spec.Body.MRTD[:]).String() || c.Measurements["rtmr0"] == nil || c.Measurements["pcr23"] == nil {
		t.Errorf("claims %+v", c)
	}

	// The TD's CCEL is the paravisor's boot, not the guest's: it is refused, not turned into
	// components.
	for _, name := range []string{tdx.CollateralCCELLog, tdx.CollateralCCELTable} {
		_, err = v.VerifyEvidence(ctx, ev, map[string][]byte{name: {1}}, attest.Options{Now: fx.Now})
		wantErr(t, err, attest.ErrMalformed, "collateral."+name)
	}

	other := *ev
	other.HCLReport = azuretest.HCLReport(azuretest.ReportTypeTDX, azuretest.TDReport([64]byte{1}, spec.Body.MRTD), rt)
	_, err = v.VerifyEvidence(ctx, &other, nil, attest.Options{Now: fx.Now})
	wantErr(t, err, attest.ErrNotAuthentic, "hcl_report.td_report.report_data")

	other = *ev
	spec2 := spec
	copy(spec2.Body.ReportData[:], "not the runtime data's hash")
	other.TDQuote = fx.Quote(spec2)
	other.HCLReport = azuretest.HCLReport(azuretest.ReportTypeTDX, azuretest.TDReport(spec2.Body.ReportData, spec.Body.MRTD), rt)
	_, err = v.VerifyEvidence(ctx, &other, nil, attest.Options{Now: fx.Now})
	wantErr(t, err, attest.ErrNotAuthentic, "runtime_data")

	other = *ev
	other.TDQuote = append([]byte(nil), tdq...)
	other.TDQuote[200] ^= 1
	_, err = v.VerifyEvidence(ctx, &other, nil, attest.Options{Now: fx.Now})
	if err == nil {
		t.Fatal("tampered TD quote verified")
	}
}
