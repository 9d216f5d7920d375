package sdk_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"log"
	"net"
	"os"
	"path/filepath"

	"google.golang.org/grpc"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/sim"
	"github.com/medicus-cloud/trust/audit/storage/posix"
	"github.com/medicus-cloud/trust/challenge"
	"github.com/medicus-cloud/trust/ear/issuer"
	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/secret"
	"github.com/medicus-cloud/trust/service"
)

// imageMeasurement is the simulated measurement that the examples' policy approves.
var imageMeasurement = func() []byte {
	m := make([]byte, 48)
	copy(m, "medicus trust sdk example image")
	return m
}()

// devTrustd starts a trustd on 127.0.0.1 with the simulated TEE, a local keyring holding
// "clinic/records" and "clinic/api-token", and a real audit log, and returns its address.
// A deployment runs cmd/trustd instead.
func devTrustd() (addr string, stop func()) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sdk-example-")
	if err != nil {
		log.Fatal(err)
	}
	keys, err := local.Open(local.Options{Path: filepath.Join(dir, "keyring"), MasterKey: secret.New(bytes.Repeat([]byte{7}, 32))})
	if err != nil {
		log.Fatal(err)
	}
	keys.CreateKey(ctx, "clinic/records")
	keys.PutSecret(ctx, "clinic/api-token", secret.New([]byte("example-token")))
	bundle, err := policies.Parse(map[string][]byte{"clinic.yaml": []byte(`
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: clinic-app}
spec:
  tee: [insecure-simulated]
  measurements: ["` + attest.Hex(imageMeasurement).String() + `"]
  grants:
    secrets: [clinic/api-token]
    dataKeys: [clinic/records]
`)})
	if err != nil {
		log.Fatal(err)
	}
	lg, err := posix.Open(ctx, posix.Options{Dir: filepath.Join(dir, "audit")})
	if err != nil {
		log.Fatal(err)
	}
	nk := make([]byte, 32)
	rand.Read(nk)
	nonces, _ := challenge.New(challenge.Options{Keys: [][]byte{nk}})
	tk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tokens, _ := issuer.New(issuer.Options{Key: tk})
	svc, err := service.New(service.Options{Verifiers: []attest.Verifier{sim.NewInsecureVerifier()},
		Policies: service.StaticPolicies{Bundle: bundle}, Keys: keys, Audit: lg, Nonces: nonces, Tokens: tokens})
	if err != nil {
		log.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterTrustServer(srv, svc)
	go srv.Serve(lis)
	return lis.Addr().String(), func() { srv.Stop(); lg.Close(); os.RemoveAll(dir) }
}
