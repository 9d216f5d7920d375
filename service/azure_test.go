package service_test

import (
	"context"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure"
	"github.com/medicus-cloud/trust/attest/azure/azuretest"
	"github.com/medicus-cloud/trust/attest/snp"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/aztpm"
	"github.com/medicus-cloud/trust/internal/swtpmtest"
	"github.com/medicus-cloud/trust/internal/wire"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/seal"
	"github.com/medicus-cloud/trust/service"
)

// azureVM is an Azure SEV-SNP CVM on swtpm: an Azure-like AK, an HCL report naming it around an
// SNP report under fake AMD roots, and the guest provider over it.
func azureVM(t *testing.T) (*aztpm.Provider, *azure.Verifier) {
	t.Helper()
	tpm := swtpmtest.Start(t)
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
	ak, err := tpm2.RSAPub(parms, n)
	if err != nil {
		t.Fatal(err)
	}
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
	hcl := azuretest.HCLReport(azuretest.ReportTypeSNP, rep, rt)[:32+1184+20+len(rt)] // swtpm's NV limit
	if _, err := aztpm.DefineNV(tpm, aztpm.HCLReportIndex, uint16(len(hcl))); err != nil {
		t.Skipf("this swtpm cannot hold a %d-byte NV index: %v", len(hcl), err)
	}
	if err := aztpm.WriteNV(tpm, aztpm.HCLReportIndex, hcl); err != nil {
		t.Fatal(err)
	}
	sv, err := snp.New(snp.Options{Roots: fx.Roots, Revocation: snp.InsecureRevocationSkip})
	if err != nil {
		t.Fatal(err)
	}
	p := &aztpm.Provider{TPM: tpm, VCEK: func(context.Context) ([]byte, error) { return fx.VCEK(), nil }}
	return p, azure.NewSNP(sv)
}

// TestAzureBinding: trustd compares an Azure evidence's binding as the scheme says (the vTPM
// quote carries SHA-256 of it): the request's own nonce and key are accepted, another key or
// another nonce is refused naming the quote's qualifying data.
func TestAzureBinding(t *testing.T) {
	p, v := azureVM(t)
	h := startCustom(t, nil, nil, func(o *service.Options) { o.Verifiers = append(o.Verifiers, v) })
	*h.now = azuretest.Now
	ctx := context.Background()

	// The policy pins the paravisor's measurement of this fixture.
	key, _ := enclave.NewKey(seal.X25519)
	probe, err := p.Evidence(ctx, key.ReportData([]byte("probe")))
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(ctx, probe, attest.Options{Now: azuretest.Now})
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := policies.Parse(map[string][]byte{"azure.yaml": []byte(`
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: azure-hello}
spec:
  tee: [azure-snp]
  measurements: ["` + c.Measurement.String() + `"]
  require:
    pcrs: {7: "` + c.Measurements["pcr7"].String() + `"}
  grants:
    secrets: [hello/api-token]
`)})
	if err != nil {
		t.Fatal(err)
	}
	h.policies.b.Store(bundle)

	other, _ := enclave.NewKey(seal.X25519)
	tests := []struct {
		name   string
		mutate func(req *pb.AttestRequest, nonce []byte)
		code   codes.Code
		msg    string
	}{
		{"bound", nil, codes.OK, ""},
		{"another key", func(r *pb.AttestRequest, _ []byte) { r.WorkloadKey = wire.WorkloadKeyToPB(other.Public()) }, codes.PermissionDenied, "tpm_quote.extra_data"},
		{"another nonce", func(r *pb.AttestRequest, fresh []byte) { r.Nonce = fresh }, codes.PermissionDenied, "tpm_quote.extra_data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := h.rpc.GetChallenge(ctx, &pb.GetChallengeRequest{})
			if err != nil {
				t.Fatal(err)
			}
			fresh, err := h.rpc.GetChallenge(ctx, &pb.GetChallengeRequest{})
			if err != nil {
				t.Fatal(err)
			}
			ev, err := p.Evidence(ctx, key.ReportData(ch.GetNonce()))
			if err != nil {
				t.Fatal(err)
			}
			if ev.TEE != azure.SNP {
				t.Fatalf("tee %s", ev.TEE)
			}
			req := &pb.AttestRequest{Nonce: ch.GetNonce(), Evidence: wire.EvidenceToPB(ev), WorkloadKey: wire.WorkloadKeyToPB(key.Public())}
			if tc.mutate != nil {
				tc.mutate(req, fresh.GetNonce())
			}
			_, err = h.rpc.Attest(ctx, req)
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.code, tc.msg)
			}
			if tc.code != codes.OK && !strings.Contains(h.audit.last().Reason, tc.msg) {
				t.Errorf("audit reason %q does not name %s", h.audit.last().Reason, tc.msg)
			}
		})
	}
}
