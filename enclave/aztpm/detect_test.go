package aztpm_test

import (
	"crypto/sha256"
	"errors"
	"os"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/medicus-cloud/trust/attest/azure"
	"github.com/medicus-cloud/trust/attest/azure/azuretest"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/aztpm"
	"github.com/medicus-cloud/trust/internal/swtpmtest"
)

type nopCloser struct{ transport.TPM }

func (nopCloser) Close() error { return nil }

// TestDetector: Azure is detected only where the vTPM holds an HCL report; a TPM without one
// (GCP's confidential VMs, any PC) and a machine without a TPM are left to the next detector.
func TestDetector(t *testing.T) {
	present := enclave.Machine{Stat: func(string) (os.FileInfo, error) { return nil, nil }}
	absent := enclave.Machine{Stat: func(string) (os.FileInfo, error) { return nil, os.ErrNotExist }}
	tpm := swtpmtest.Start(t)
	d := aztpm.NewDetector(func() (transport.TPMCloser, error) { return nopCloser{tpm}, nil })

	if p, err := d.Detect(absent); p != nil || err != nil {
		t.Fatalf("no %s: %v, %v", aztpm.DefaultDevice, p, err)
	}
	if p, err := d.Detect(present); p != nil || err != nil {
		t.Fatalf("a TPM without an HCL report: %v, %v", p, err)
	}
	unusable := aztpm.NewDetector(func() (transport.TPMCloser, error) { return nil, errors.New("permission denied") })
	if p, err := unusable.Detect(present); p != nil || err != nil {
		t.Fatalf("an unusable TPM: %v, %v", p, err)
	}

	// Not an HCL report: still not Azure.
	azuretest.InstallHCL(t, tpm, make([]byte, 1300))
	if p, err := d.Detect(present); p != nil || err != nil {
		t.Fatalf("garbage in the NV index: %v, %v", p, err)
	}
}

func TestDetectorHCL(t *testing.T) {
	present := enclave.Machine{Stat: func(string) (os.FileInfo, error) { return nil, nil }}
	tpm := swtpmtest.Start(t)
	ak := azuretest.PersistAK(t, tpm)
	fx, err := azuretest.NewSNPFixture()
	if err != nil {
		t.Fatal(err)
	}
	rt := azuretest.RuntimeData(ak, nil)
	var rd [64]byte
	h := sha256.Sum256(rt)
	copy(rd[:], h[:])
	rep, err := fx.Report(rd, 0)
	if err != nil {
		t.Fatal(err)
	}
	azuretest.InstallHCL(t, tpm, azuretest.HCLReport(azuretest.ReportTypeSNP, rep, rt)[:32+1184+20+len(rt)])
	p, err := aztpm.NewDetector(func() (transport.TPMCloser, error) { return nopCloser{tpm}, nil }).Detect(present)
	if err != nil || p == nil || p.TEE() != azure.SNP {
		t.Fatalf("got %v, %v; want the azure-snp provider", p, err)
	}
}
