package loadtest_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/sim"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/challenge"
	"github.com/medicus-cloud/trust/ear/issuer"
	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/secret"
	"github.com/medicus-cloud/trust/service"
)

// memAudit keeps records in memory: the load test measures the service, not the disk.
type memAudit struct {
	mu sync.Mutex
	n  uint64
}

func (m *memAudit) Append(context.Context, *audit.Record) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	return m.n - 1, nil
}

func measurement() []byte {
	m := make([]byte, 48)
	copy(m, "medicus trust loadtest image v1")
	return m
}

const (
	keyName    = "loadtest/records"
	secretName = "loadtest/api-token"
)

// startTrustd starts trustd's service on 127.0.0.1 with the simulated TEE accepted, a local
// keyring and an in-memory audit log, the way service/service_test.go does; opts are extra
// server options (interceptors, limits).
func startTrustd(tb testing.TB, opts ...grpc.ServerOption) string {
	tb.Helper()
	ctx := context.Background()
	keys, err := local.Open(local.Options{Path: filepath.Join(tb.TempDir(), "keyring"), MasterKey: secret.New(bytes.Repeat([]byte{7}, 32))})
	if err != nil {
		tb.Fatal(err)
	}
	if err := keys.CreateKey(ctx, keyName); err != nil {
		tb.Fatal(err)
	}
	if _, err := keys.PutSecret(ctx, secretName, secret.New([]byte("loadtest-token"))); err != nil {
		tb.Fatal(err)
	}
	bundle, err := policies.Parse(map[string][]byte{"loadtest.yaml": []byte(`
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: loadtest}
spec:
  tee: [insecure-simulated]
  measurements: ["` + attest.Hex(measurement()).String() + `"]
  grants:
    secrets: [` + secretName + `]
    dataKeys: [` + keyName + `]
`)})
	if err != nil {
		tb.Fatal(err)
	}
	nonces, err := challenge.New(challenge.Options{Keys: [][]byte{bytes.Repeat([]byte{1}, 32)}})
	if err != nil {
		tb.Fatal(err)
	}
	tk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tokens, err := issuer.New(issuer.Options{Key: tk})
	if err != nil {
		tb.Fatal(err)
	}
	svc, err := service.New(service.Options{
		Verifiers: []attest.Verifier{sim.NewInsecureVerifier()},
		Policies:  service.StaticPolicies{Bundle: bundle}, Keys: keys, Audit: &memAudit{},
		Nonces: nonces, Tokens: tokens,
	})
	if err != nil {
		tb.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	pb.RegisterTrustServer(srv, svc)
	go srv.Serve(lis)
	tb.Cleanup(srv.Stop)
	return lis.Addr().String()
}
