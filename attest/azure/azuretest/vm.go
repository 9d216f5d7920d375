package azuretest

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/medicus-cloud/trust/attest/snp"
	"github.com/medicus-cloud/trust/enclave/aztpm"
	"github.com/medicus-cloud/trust/internal/swtpmtest"
)

// SNPVM is an Azure SEV-SNP CVM on swtpm: an Azure-like AK at aztpm.AKHandle, an HCL report
// naming it (around an SNP report under the fixture's fake AMD roots) in NV 0x01400001, and the
// guest provider over it.
type SNPVM struct {
	TPM      transport.TPM
	AK       *rsa.PublicKey
	Fixture  *SNPFixture
	Provider *aztpm.Provider
}

// NewSNPVM starts swtpm (skipping the test without it, outside CI) and sets the VM up.
func NewSNPVM(t testing.TB) *SNPVM {
	t.Helper()
	tpm := swtpmtest.Start(t)
	ak := PersistAK(t, tpm)
	fx, err := NewSNPFixture()
	if err != nil {
		t.Fatal(err)
	}
	rt := RuntimeData(ak, make([]byte, 64))
	var rd [64]byte
	d := sha256.Sum256(rt)
	copy(rd[:], d[:])
	rep, err := fx.Report(rd, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Without Azure's padding to 2600 bytes: swtpm's NV indices hold at most 2048.
	InstallHCL(t, tpm, HCLReport(ReportTypeSNP, rep, rt)[:32+1184+20+len(rt)])
	vcek := fx.VCEK()
	return &SNPVM{TPM: tpm, AK: ak, Fixture: fx,
		Provider: &aztpm.Provider{TPM: tpm, VCEK: func(context.Context) ([]byte, error) { return vcek, nil }}}
}

// Verifier is an SEV-SNP verifier under the fixture's roots (no CRL).
func (vm *SNPVM) Verifier(t testing.TB) *snp.Verifier {
	t.Helper()
	v, err := snp.New(snp.Options{Roots: vm.Fixture.Roots, Revocation: snp.InsecureRevocationSkip})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// PersistAK makes an Azure-like AK (aztpm.AKTemplate) at aztpm.AKHandle, as the paravisor does.
func PersistAK(t testing.TB, tpm transport.TPM) *rsa.PublicKey {
	t.Helper()
	r, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHEndorsement, InPublic: tpm2.New2B(aztpm.AKTemplate)}.Execute(tpm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (tpm2.EvictControl{Auth: tpm2.TPMRHOwner, ObjectHandle: &tpm2.NamedHandle{Handle: r.ObjectHandle, Name: r.Name}, PersistentHandle: aztpm.AKHandle}).Execute(tpm); err != nil {
		t.Fatal(err)
	}
	pub, err := r.OutPublic.Contents()
	if err != nil {
		t.Fatal(err)
	}
	parms, err := pub.Parameters.RSADetail()
	if err != nil {
		t.Fatal(err)
	}
	n, err := pub.Unique.RSA()
	if err != nil {
		t.Fatal(err)
	}
	k, err := tpm2.RSAPub(parms, n)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// InstallHCL writes an HCL report into NV 0x01400001 (skipping the test if swtpm cannot hold it).
func InstallHCL(t testing.TB, tpm transport.TPM, hcl []byte) {
	t.Helper()
	if _, err := aztpm.DefineNV(tpm, aztpm.HCLReportIndex, uint16(len(hcl))); err != nil {
		t.Skipf("this swtpm cannot hold a %d-byte NV index: %v", len(hcl), err)
	}
	if err := aztpm.WriteNV(tpm, aztpm.HCLReportIndex, hcl); err != nil {
		t.Fatal(err)
	}
}
