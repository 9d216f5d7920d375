package aztpm_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure"
	"github.com/medicus-cloud/trust/attest/azure/azuretest"
	"github.com/medicus-cloud/trust/attest/snp"
	"github.com/medicus-cloud/trust/attest/tdx"
	"github.com/medicus-cloud/trust/attest/tdx/tdxtest"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/aztpm"
	"github.com/medicus-cloud/trust/internal/swtpmtest"
	"github.com/medicus-cloud/trust/seal"
)

// persistAK makes an Azure-like AK on the simulator at aztpm.AKHandle, as the paravisor does.
func persistAK(t *testing.T, tpm transport.TPM) *rsa.PublicKey {
	t.Helper()
	r, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHEndorsement, InPublic: tpm2.New2B(aztpm.AKTemplate)}.Execute(tpm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (tpm2.EvictControl{Auth: tpm2.TPMRHOwner, ObjectHandle: &tpm2.NamedHandle{Handle: r.ObjectHandle, Name: r.Name}, PersistentHandle: aztpm.AKHandle}).Execute(tpm); err != nil {
		t.Fatal(err)
	}
	pub, _ := r.OutPublic.Contents()
	parms, _ := pub.Parameters.RSADetail()
	n, _ := pub.Unique.RSA()
	k, err := tpm2.RSAPub(parms, n)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// installHCL writes an HCL report into the simulator's NV index 0x01400001.
func installHCL(t *testing.T, tpm transport.TPM, hcl []byte) {
	t.Helper()
	if _, err := aztpm.DefineNV(tpm, aztpm.HCLReportIndex, uint16(len(hcl))); err != nil {
		t.Skipf("this swtpm cannot hold a %d-byte NV index: %v", len(hcl), err)
	}
	if err := aztpm.WriteNV(tpm, aztpm.HCLReportIndex, hcl); err != nil {
		t.Fatal(err)
	}
}

// TestProviderToVerifier runs the guest provider against swtpm holding an HCL report that names
// the simulator's AK (SNP report under fake AMD roots), and verifies what it produced.
func TestProviderToVerifier(t *testing.T) {
	tpm := swtpmtest.Start(t)
	ak := persistAK(t, tpm)
	fx, err := azuretest.NewSNPFixture()
	if err != nil {
		t.Fatal(err)
	}
	rt := azuretest.RuntimeData(ak, make([]byte, 64))
	var rd [64]byte
	d := sha256.Sum256(rt)
	copy(rd[:], d[:])
	rep, err := fx.Report(rd, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Without Azure's padding to 2600 bytes: swtpm's NV indices hold at most 2048.
	installHCL(t, tpm, azuretest.HCLReport(azuretest.ReportTypeSNP, rep, rt)[:32+1184+20+len(rt)])

	key, err := enclave.NewKey(seal.X25519)
	if err != nil {
		t.Fatal(err)
	}
	binding := key.ReportData([]byte("a nonce from trustd"))
	imds := fakeIMDS(t, fx.VCEK())
	p := &aztpm.Provider{TPM: tpm, RefreshUserData: true, VCEK: (&aztpm.IMDSClient{BaseURL: imds.URL, HTTP: imds.Client()}).VCEK}
	if p.TEE() != azure.SNP {
		t.Fatalf("TEE %s", p.TEE())
	}
	ev, err := p.Evidence(context.Background(), binding)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := snp.New(snp.Options{Roots: fx.Roots, Revocation: snp.InsecureRevocationSkip})
	if err != nil {
		t.Fatal(err)
	}
	c, err := azure.NewSNP(sv).Verify(context.Background(), ev, attest.Options{Now: azuretest.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := azure.CheckBinding(c, binding); err != nil {
		t.Fatal(err)
	}
	if len(c.Measurements) != 24 {
		t.Errorf("measurements %v", c.Measurements)
	}
	// The user data index holds the binding.
	u, err := aztpm.ReadNV(tpm, aztpm.UserDataIndex)
	if err != nil || !bytes.Equal(u, binding[:]) {
		t.Errorf("user data %x, %v", u, err)
	}
}

// TestTDXProvider: the HCL report holds a TD report; the provider has it quoted (here by
// tdxtest's PKI standing in for Azure's quoting service) and quotes the vTPM.
func TestTDXProvider(t *testing.T) {
	tpm := swtpmtest.Start(t)
	ak := persistAK(t, tpm)
	fx, err := tdxtest.NewFixture()
	if err != nil {
		t.Fatal(err)
	}
	rt := azuretest.RuntimeData(ak, nil)
	spec := fx.DefaultSpec()
	d := sha256.Sum256(rt)
	copy(spec.Body.ReportData[:], d[:])
	hcl := azuretest.HCLReport(azuretest.ReportTypeTDX, azuretest.TDReport(spec.Body.ReportData, spec.Body.MRTD), rt)
	installHCL(t, tpm, hcl[:32+1184+20+len(rt)])
	p := &aztpm.Provider{TPM: tpm, TDQuote: func(_ context.Context, tdReport []byte) ([]byte, error) {
		s := spec
		copy(s.Body.ReportData[:], tdReport[128:192])
		return fx.Quote(s), nil
	}}
	if p.TEE() != azure.TDX {
		t.Fatalf("TEE %s", p.TEE())
	}
	binding := attest.ReportData([]byte("nonce"), []byte("suite"), []byte("key"))
	ev, err := p.Evidence(context.Background(), binding)
	if err != nil {
		t.Fatal(err)
	}
	tv, err := tdx.New(tdx.Options{Root: fx.PKI.Root})
	if err != nil {
		t.Fatal(err)
	}
	c, err := azure.NewTDX(tv).Verify(context.Background(), ev, attest.Options{Now: fx.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := azure.CheckBinding(c, binding); err != nil {
		t.Fatal(err)
	}
	if _, err := (&aztpm.Provider{TPM: tpm}).Evidence(context.Background(), binding); err == nil {
		t.Fatal("TDX evidence without a TD quote")
	}
}

func TestNoTPM(t *testing.T) {
	_, err := (&aztpm.Provider{}).Evidence(context.Background(), [64]byte{})
	if !errors.Is(err, enclave.ErrNoTEE) {
		t.Fatalf("got %v", err)
	}
	if _, err := aztpm.OpenDevice("/nonexistent/tpmrm0"); !errors.Is(err, enclave.ErrNoTEE) {
		t.Fatalf("got %v", err)
	}
}
