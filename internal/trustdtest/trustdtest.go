// Package trustdtest starts trustd's service in-process for tests, examples and benchmarks: the
// simulated TEE accepted, a local keyring, a policy bundle, nonces, a token issuer and an audit
// log, served over gRPC on 127.0.0.1. It is the one harness of the repository; tests that need
// more (TLS, the HTTP/JSON gateway, a real Vault) adjust its Options or wrap its Service.
package trustdtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/sim"
	"github.com/medicus-cloud/trust/audit/storage/posix"
	"github.com/medicus-cloud/trust/challenge"
	"github.com/medicus-cloud/trust/ear/issuer"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/secret"
	"github.com/medicus-cloud/trust/service"
)

// Options configure Start. The zero value starts a trustd that approves nothing.
type Options struct {
	// Policy is a policy bundle as YAML sources by file name. Empty: Image builds one.
	Policy map[string][]byte
	// Bundle, if set, is the policy bundle (Policy and Image are then ignored).
	Bundle *policies.Bundle
	// Image, when Policy is empty, is the one policy to build: the simulated TEE with this
	// measurement, granting Secrets and DataKeys.
	Image *Image
	// DataKeys are created in the keyring; Secrets are stored in it.
	DataKeys []string
	Secrets  map[string]string
	// Dir holds the keyring and the audit log; default a new temporary directory that Close
	// removes.
	Dir string
	// Audit replaces the audit log on disk (for example an in-memory one for benchmarks).
	Audit service.AuditLog
	// Issuer options for the token issuer (Key is generated when nil).
	Issuer issuer.Options
	// Service, if set, adjusts the service options before the service is made.
	Service func(*service.Options)
	// Server are extra gRPC server options (interceptors, limits).
	Server []grpc.ServerOption
	// Now, if set, is the clock of the nonces, the token issuer and the service (for evidence
	// signed under test roots at a fixed time).
	Now func() time.Time
	// NoListen makes only the Service: the caller serves it (the HTTP/JSON gateway, TLS) and
	// Addr stays empty.
	NoListen bool
}

// Image is a policy for one simulated image.
type Image struct {
	Name        string
	Measurement []byte
	Secrets     []string
	DataKeys    []string
}

// Server is a running in-process trustd.
type Server struct {
	Addr    string
	Service *service.Service
	Keys    *local.Keyring
	Tokens  *issuer.Issuer
	Bundle  *policies.Bundle
	// Log is the audit log on disk, nil when Options.Audit replaced it.
	Log *posix.Log
	Dir string

	srv     *grpc.Server
	cleanup []func()
}

// Policy renders im as an ImagePolicy document.
func (im Image) Policy() []byte {
	list := func(s []string) string { return "[" + strings.Join(s, ", ") + "]" }
	return fmt.Appendf(nil, `apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: %s}
spec:
  tee: [insecure-simulated]
  measurements: ["%s"]
  grants:
    secrets: %s
    dataKeys: %s
`, im.Name, attest.Hex(im.Measurement), list(im.Secrets), list(im.DataKeys))
}

// Start starts a trustd; Close stops it.
func Start(ctx context.Context, o Options) (_ *Server, err error) {
	s := &Server{Dir: o.Dir}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "trustdtest-"); err != nil {
			return nil, err
		}
		dir := s.Dir
		s.cleanup = append(s.cleanup, func() { os.RemoveAll(dir) })
	}
	if s.Keys, err = local.Open(local.Options{Path: filepath.Join(s.Dir, "keyring"), MasterKey: secret.New(bytes.Repeat([]byte{7}, 32))}); err != nil {
		return nil, err
	}
	for _, k := range o.DataKeys {
		if err := s.Keys.CreateKey(ctx, k); err != nil && !errors.Is(err, kms.ErrExists) {
			return nil, err
		}
	}
	names := make([]string, 0, len(o.Secrets))
	for n := range o.Secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, err := s.Keys.PutSecret(ctx, n, secret.New([]byte(o.Secrets[n]))); err != nil {
			return nil, err
		}
	}
	files := o.Policy
	if len(files) == 0 && o.Image != nil {
		files = map[string][]byte{o.Image.Name + ".yaml": o.Image.Policy()}
	}
	if s.Bundle = o.Bundle; s.Bundle == nil {
		if s.Bundle, err = policies.Parse(files); err != nil {
			return nil, err
		}
	}
	log := o.Audit
	if log == nil {
		if s.Log, err = posix.Open(ctx, posix.Options{Dir: filepath.Join(s.Dir, "audit")}); err != nil {
			return nil, err
		}
		l := s.Log
		s.cleanup = append(s.cleanup, func() { l.Close() })
		log = s.Log
	}
	nk := make([]byte, 32)
	rand.Read(nk)
	nonces, err := challenge.New(challenge.Options{Keys: [][]byte{nk}, Now: o.Now})
	if err != nil {
		return nil, err
	}
	io := o.Issuer
	if io.Key == nil {
		if io.Key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, err
		}
	}
	if io.Now == nil {
		io.Now = o.Now
	}
	if s.Tokens, err = issuer.New(io); err != nil {
		return nil, err
	}
	so := service.Options{Verifiers: []attest.Verifier{sim.NewInsecureVerifier()},
		Policies: service.StaticPolicies{Bundle: s.Bundle}, Keys: s.Keys, Audit: log, Nonces: nonces, Tokens: s.Tokens, Now: o.Now}
	if o.Service != nil {
		o.Service(&so)
	}
	if s.Service, err = service.New(so); err != nil {
		return nil, err
	}
	if o.NoListen {
		return s, nil
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.srv = grpc.NewServer(o.Server...)
	pb.RegisterTrustServer(s.srv, s.Service)
	go s.srv.Serve(lis)
	s.Addr = lis.Addr().String()
	return s, nil
}

// Close stops the server and removes what Start made.
func (s *Server) Close() {
	if s.srv != nil {
		s.srv.Stop()
	}
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		s.cleanup[i]()
	}
	s.cleanup = nil
}

// TB is the part of testing.TB that StartTB needs.
type TB interface {
	Helper()
	Fatal(args ...any)
	Cleanup(func())
	TempDir() string
}

// StartTB is Start for a test: it fails the test on error, keeps the data in the test's
// temporary directory and stops the server when the test ends.
func StartTB(tb TB, o Options) *Server {
	tb.Helper()
	if o.Dir == "" {
		o.Dir = tb.TempDir()
	}
	s, err := Start(context.Background(), o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}
