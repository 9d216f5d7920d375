package service_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/sim"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/challenge"
	"github.com/medicus-cloud/trust/ear/issuer"
	"github.com/medicus-cloud/trust/enclave/simguest"
	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/sdk"
	"github.com/medicus-cloud/trust/secret"
	"github.com/medicus-cloud/trust/service"
)

// Issue 14 item 9: trustd refuses debug guests outside --dev whatever a policy says. The policy
// here allows debug; only the dev baseline lets it.
func TestDebugGuestBaseline(t *testing.T) {
	for _, tc := range []struct {
		name      string
		baseline  policies.Baseline
		debug     bool
		wantAllow bool
	}{
		{"production refuses a debug guest the policy allows", policies.Baseline{}, true, false},
		{"production admits a non-debug guest", policies.Baseline{}, false, true},
		{"dev admits a debug guest the policy allows", policies.Baseline{AllowDebug: true}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, log := startBaseline(t, tc.baseline)
			now := time.Now()
			c, err := sdk.New(context.Background(), sdk.Options{Conn: conn, Now: func() time.Time { return now },
				Provider: simguest.NewInsecure(simguest.Options{Measurement: helloMeasurement(), SVN: 1, Debug: tc.debug})})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Attest(context.Background())
			r := log.last()
			if tc.wantAllow {
				if err != nil || r.Verdict != audit.VerdictAllow {
					t.Fatalf("denied: %v (audit %q)", err, r.Verdict)
				}
				return
			}
			var d *sdk.DeniedError
			if !errors.As(err, &d) || d.Claim != "debug" || d.Policy != "" {
				t.Fatalf("got %v, want a baseline denial on debug", err)
			}
			if r.Verdict != audit.VerdictDeny || r.Policy != "" {
				t.Fatalf("audit %+v, want a deny naming no policy", r)
			}
		})
	}
}

func startBaseline(t *testing.T, base policies.Baseline) (*grpc.ClientConn, *memAudit) {
	t.Helper()
	keys, err := local.Open(local.Options{Path: filepath.Join(t.TempDir(), "keyring"), MasterKey: secret.New(bytes.Repeat([]byte{9}, 32))})
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := policies.Parse(map[string][]byte{"hello.yaml": []byte(`
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: hello-debug}
spec:
  tee: [insecure-simulated]
  measurements: ["` + attest.Hex(helloMeasurement()).String() + `"]
  require: {allowDebug: true}
  grants: {secrets: [hello/api-token]}
`)})
	if err != nil {
		t.Fatal(err)
	}
	nonces, _ := challenge.New(challenge.Options{Keys: [][]byte{bytes.Repeat([]byte{1}, 32)}})
	tk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tokens, _ := issuer.New(issuer.Options{Key: tk})
	log := &memAudit{}
	svc, err := service.New(service.Options{
		Verifiers: []attest.Verifier{sim.NewInsecureVerifier()},
		Policies:  service.StaticPolicies{Bundle: bundle}, Keys: keys, Audit: log,
		Nonces: nonces, Tokens: tokens, Baseline: base,
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterTrustServer(srv, svc)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, log
}
