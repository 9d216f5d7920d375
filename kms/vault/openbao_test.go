package vault_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/kmstest"
	"github.com/medicus-cloud/trust/kms/vault"
	"github.com/medicus-cloud/trust/kms/vault/vaulttest"
	"github.com/medicus-cloud/trust/secret"
)

// recorder is an HTTP transport in front of the real Vault that writes down every request.
type recorder struct {
	rt    http.RoundTripper
	mu    sync.Mutex
	calls map[string]int // "METHOD path"
}

func newRecorder(srv *vaulttest.Server) *recorder {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CAPEM)
	return &recorder{rt: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}, calls: map[string]int{}}
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.calls[req.Method+" "+strings.TrimPrefix(req.URL.Path, "/v1/")]++
	r.mu.Unlock()
	return r.rt.RoundTrip(req)
}

// TestOpenBaoPaths runs the conformance suite and every other store method against a real
// Vault through a recording transport, and fails if the store called any path outside
// vault.OpenBaoPaths: the store must keep to the API that OpenBao shares.
func TestOpenBaoPaths(t *testing.T) {
	ctx := context.Background()
	srv := vaulttest.Shared(t)
	rec := newRecorder(srv)
	var cfgs []vault.Config
	var mu sync.Mutex
	newStore := func(t *testing.T) *vault.Store {
		cfg := config(t, srv, srv.AdminRoleID, srv.AdminSecretIDFile)
		mu.Lock()
		cfgs = append(cfgs, cfg)
		mu.Unlock()
		return open(t, cfg, vault.Options{Transport: rec})
	}
	kmstest.Run(t, func(t *testing.T) kmstest.Store { return newStore(t) })

	// What the suite does not reach: rewrap, minimum decryption version, versioned secrets,
	// health, and revoking the login on Close.
	s := newStore(t)
	const k = "tenant-a/records"
	if err := s.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	dk, err := s.GenerateDataKey(ctx, kms.MustBind(k, caseA))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RotateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RewrapDataKey(ctx, kms.MustBind(k, caseA), dk.Wrapped); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMinDecryptionVersion(ctx, k, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutSecret(ctx, "tenant-a/db", secret.New([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSecretVersion(ctx, "tenant-a/db", 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Health(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()

	rec.mu.Lock()
	defer rec.mu.Unlock()
	var seen []string
	for call := range rec.calls {
		seen = append(seen, call)
	}
	sort.Strings(seen)
	for _, call := range seen {
		method, path, _ := strings.Cut(call, " ")
		ok := false
		for i := range cfgs {
			ok = ok || vault.AllowedPath(&cfgs[i], method, path)
		}
		if !ok {
			t.Errorf("the store called %s %s, which is not in vault.OpenBaoPaths", method, path)
		}
	}
	// Every listed path was exercised, so the list is not larger than what the store uses
	// (Kubernetes login and renew-self have their own tests).
	for _, p := range vault.OpenBaoPaths {
		if p.Path == "auth/token/renew-self" {
			continue
		}
		used := false
		for _, call := range seen {
			method, path, _ := strings.Cut(call, " ")
			if method != p.Method {
				continue
			}
			one := []vault.APIPath{p}
			for i := range cfgs {
				used = used || vault.AllowedPathIn(&cfgs[i], one, method, path)
			}
		}
		if !used {
			t.Errorf("%s %s is listed but the run never called it", p.Method, p.Path)
		}
	}
	t.Logf("%d distinct calls, all in vault.OpenBaoPaths", len(seen))
}
