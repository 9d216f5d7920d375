package service_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure"
	"github.com/medicus-cloud/trust/attest/azure/azuretest"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/internal/wire"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/seal"
	"github.com/medicus-cloud/trust/service"
)

// TestAzureBinding: trustd compares an Azure evidence's binding as the scheme says (the vTPM
// quote carries SHA-256 of it): the request's own nonce and key are accepted, another key or
// another nonce is refused naming the quote's qualifying data.
func TestAzureBinding(t *testing.T) {
	vm := azuretest.NewSNPVM(t)
	p, v := vm.Provider, azure.NewSNP(vm.Verifier(t))
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
