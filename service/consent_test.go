package service_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/consent"
	"github.com/medicus-cloud/trust/consent/consenttest"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/internal/benchratio"
	"github.com/medicus-cloud/trust/internal/wire"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/seal"
	"github.com/medicus-cloud/trust/service"
)

// startConsent is the harness with a grant that requires consent (hello/patient-records) beside
// the plain one (hello/records), and reg as the consent registry (nil: none configured).
func startConsent(t testing.TB, withRegistry bool) (*harness, *consenttest.Issuer, []byte) {
	t.Helper()
	ufr := consenttest.New("uk-freiburg", "ufr-1")
	var reg *consent.Registry
	if withRegistry {
		var err error
		reg, err = consent.Open(filepath.Join(t.TempDir(), "consent.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.RegisterKey(ufr.Tenant, ufr.KeyID, ufr.PublicKeyPEM()); err != nil {
			t.Fatal(err)
		}
	}
	h := startCustom(t, nil, nil, func(o *service.Options) {
		if reg != nil {
			o.Consent = reg
		}
	})
	if err := h.keys.CreateKey(context.Background(), "hello/patient-records"); err != nil {
		t.Fatal(err)
	}
	b, err := policies.Parse(map[string][]byte{"hello.yaml": []byte(`
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: hello}
spec:
  tee: [insecure-simulated]
  measurements: ["` + attest.Hex(helloMeasurement()).String() + `"]
  grants:
    dataKeys:
      - hello/records
      - name: hello/patient-records
        consent: {purposes: [treatment], patientField: patient}
`)})
	if err != nil {
		t.Fatal(err)
	}
	h.policies.b.Store(b)
	return h, ufr, nil
}

// consentToken attests the hello workload over the raw API and returns its token.
func consentToken(t testing.TB, h *harness) []byte {
	t.Helper()
	ctx := context.Background()
	ch, err := h.rpc.GetChallenge(ctx, &pb.GetChallengeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := enclave.NewKey(seal.X25519)
	ev, _ := hello().Evidence(ctx, key.ReportData(ch.GetNonce()))
	resp, err := h.rpc.Attest(ctx, &pb.AttestRequest{Nonce: ch.GetNonce(), Evidence: wire.EvidenceToPB(ev), WorkloadKey: wire.WorkloadKeyToPB(key.Public())})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetToken()
}

func (m *memAudit) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.records = m.records[:0]
}

func TestConsentFailsClosedWithoutRegistry(t *testing.T) {
	h, ufr, _ := startConsent(t, false)
	tok := consentToken(t, h)
	st := ufr.Sign(ufr.Claims("st-1", "psn-1", "hello", *h.now, consent.Treatment))
	_, err := h.rpc.GenerateDataKey(context.Background(), &pb.GenerateDataKeyRequest{Token: tok, KeyName: "hello/patient-records",
		Context: map[string]string{"tenant": "uk-freiburg", "patient": "psn-1"}, Consent: st})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("consent grant without a registry: %v, want Unavailable", err)
	}
	if r := h.audit.last(); r.Verdict != "error" || len(r.Purposes) != 1 {
		t.Fatalf("record %+v", r)
	}
}

func TestConsentBothStatementAndBreakGlass(t *testing.T) {
	h, ufr, _ := startConsent(t, true)
	tok := consentToken(t, h)
	st := ufr.Sign(ufr.Claims("st-1", "psn-1", "hello", *h.now, consent.Treatment))
	_, err := h.rpc.GenerateDataKey(context.Background(), &pb.GenerateDataKeyRequest{Token: tok, KeyName: "hello/patient-records",
		Context: map[string]string{"tenant": "uk-freiburg", "patient": "psn-1"}, Consent: st, BreakGlassId: "br-1"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("statement and break-glass: %v", err)
	}
	// A grant without break-glass refuses a break-glass ID.
	_, err = h.rpc.GenerateDataKey(context.Background(), &pb.GenerateDataKeyRequest{Token: tok, KeyName: "hello/patient-records",
		Context: map[string]string{"tenant": "uk-freiburg", "patient": "psn-1"}, BreakGlassId: "br-1"})
	if d := service.DenialOf(err); d == nil || d.GetClaim() != "break_glass" {
		t.Fatalf("break-glass on a grant without it: %v", err)
	}
	if r := h.audit.last(); r.Verdict != "deny" || r.BreakGlassID != "br-1" {
		t.Fatalf("record %+v", r)
	}
}

// BenchmarkRatioReleaseWithConsent compares a data-key release whose grant requires consent
// (statement parsed, signature verified, claims checked) with the same release of a plain grant.
func BenchmarkRatioReleaseWithConsent(b *testing.B) {
	ctx := context.Background()
	h, ufr, _ := startConsent(b, true)
	tok := consentToken(b, h)
	kc := map[string]string{"tenant": "uk-freiburg", "patient": "psn-1"}
	st := ufr.Sign(ufr.Claims("st-1", "psn-1", "hello", time.Now(), consent.Treatment))
	withConsent := func(n int) {
		for range n {
			if _, err := h.rpc.GenerateDataKey(ctx, &pb.GenerateDataKeyRequest{Token: tok, KeyName: "hello/patient-records", Context: kc, Consent: st}); err != nil {
				b.Fatal(err)
			}
		}
		h.audit.reset()
	}
	plain := func(n int) {
		for range n {
			if _, err := h.rpc.GenerateDataKey(ctx, &pb.GenerateDataKeyRequest{Token: tok, KeyName: "hello/records", Context: kc}); err != nil {
				b.Fatal(err)
			}
		}
		h.audit.reset()
	}
	benchratio.Time(b, "release-with-consent/release", withConsent, plain)
}
