package aztpm_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/google/go-eventlog/tcg"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure"
	"github.com/medicus-cloud/trust/attest/azure/azuretest"
	"github.com/medicus-cloud/trust/attest/eventlog"
	"github.com/medicus-cloud/trust/attest/snp"
	"github.com/medicus-cloud/trust/attest/tdx"
	"github.com/medicus-cloud/trust/attest/tdx/tdxtest"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/aztpm"
	"github.com/medicus-cloud/trust/internal/swtpmtest"
	"github.com/medicus-cloud/trust/seal"
)

// TestProviderToVerifier runs the guest provider against swtpm holding an HCL report that names
// the simulator's AK (SNP report under fake AMD roots), and verifies what it produced.
func TestProviderToVerifier(t *testing.T) {
	tpm := swtpmtest.Start(t)
	ak := azuretest.PersistAK(t, tpm)
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
	azuretest.InstallHCL(t, tpm, azuretest.HCLReport(azuretest.ReportTypeSNP, rep, rt)[:32+1184+20+len(rt)])

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
	ak := azuretest.PersistAK(t, tpm)
	fx, err := tdxtest.NewFixture()
	if err != nil {
		t.Fatal(err)
	}
	rt := azuretest.RuntimeData(ak, nil)
	spec := fx.DefaultSpec()
	d := sha256.Sum256(rt)
	copy(spec.Body.ReportData[:], d[:])
	hcl := azuretest.HCLReport(azuretest.ReportTypeTDX, azuretest.TDReport(spec.Body.ReportData, spec.Body.MRTD), rt)
	azuretest.InstallHCL(t, tpm, hcl[:32+1184+20+len(rt)])
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

// bootLog extends swtpm's SHA-256 PCRs with the events of a real vTPM event log (GCE Ubuntu
// 24.04 on SEV-SNP), as that VM's firmware and loaders did, and returns the log.
func bootLog(t *testing.T, tpm transport.TPM) []byte {
	t.Helper()
	raw, err := os.ReadFile("../../attest/eventlog/testdata/tpm/ubuntu-2404-amd-sevsnp.bin")
	if err != nil {
		t.Fatal(err)
	}
	log, err := eventlog.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range log.Events {
		d, ok := e.Digests[crypto.SHA256]
		if !ok || e.Type == tcg.NoAction {
			continue
		}
		extend(t, tpm, e.Index, d)
	}
	return raw
}

func extend(t *testing.T, tpm transport.TPM, pcr uint32, digest []byte) {
	t.Helper()
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: digest}}},
	}.Execute(tpm)
	if err != nil {
		t.Fatal(err)
	}
}

// TestEventLogToVerifier: with an event log the provider sends it along and quotes the PCRs it
// accounts for, leaving out one extended after boot outside the log (as IMA extends PCR 10); the
// verifier replays it and draws the boot components from it. Asking for a PCR the log does not
// account for fails closed at the verifier, naming it.
func TestEventLogToVerifier(t *testing.T) {
	vm := azuretest.NewSNPVM(t)
	raw := bootLog(t, vm.TPM)
	extend(t, vm.TPM, 10, bytes.Repeat([]byte{0x1a}, 32)) // a runtime measurement, in no boot log
	p := vm.Provider
	p.EventLog = func() ([]byte, error) { return raw, nil }
	v := azure.NewSNP(vm.Verifier(t))
	binding := attest.ReportData([]byte("nonce"), []byte("suite"), []byte("key"))

	ev, err := p.Evidence(context.Background(), binding)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ev.Collateral[azure.CollateralTPMEventLog], raw) {
		t.Fatal("the evidence does not carry the event log")
	}
	c, err := v.Verify(context.Background(), ev, attest.Options{Now: azuretest.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kernel", "cmdline", "shim", "grub"} {
		if len(c.Components[name]) == 0 {
			t.Errorf("no %s component in %v", name, c.Components)
		}
	}
	for _, pcr := range []uint32{4, 7, 8, 9, 14, 16} {
		if _, ok := c.Measurements[attest.PCRClaim(pcr)]; !ok {
			t.Errorf("pcr%d not quoted", pcr)
		}
	}
	if _, ok := c.Measurements[attest.PCRClaim(10)]; ok {
		t.Error("pcr10, extended outside the log, was quoted")
	}

	p.PCRs = []uint{4, 10}
	ev, err = p.Evidence(context.Background(), binding)
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), ev, attest.Options{Now: azuretest.Now})
	var ae *attest.Error
	if !errors.As(err, &ae) || ae.Field != "event_log.pcr10" || !errors.Is(err, attest.ErrNotAuthentic) {
		t.Fatalf("quoting pcr10 with a log that does not account for it: %v", err)
	}

	p.PCRs = nil
	p.EventLog = func() ([]byte, error) { return nil, fs.ErrPermission }
	if _, err := p.Evidence(context.Background(), binding); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("unreadable log: %v", err)
	}
	p.EventLog = func() ([]byte, error) { return []byte("not a log"), nil }
	if _, err := p.Evidence(context.Background(), binding); err == nil || !strings.Contains(err.Error(), "does not replay") {
		t.Fatalf("garbage log: %v", err)
	}
}
