package vault_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/kmstest"
	"github.com/medicus-cloud/trust/kms/vault"
	"github.com/medicus-cloud/trust/kms/vault/vaulttest"
	"github.com/medicus-cloud/trust/secret"
)

func TestMain(m *testing.M) { vaulttest.Main(m) }

var caseA = kms.Context{"tenant": "uk-freiburg", "case": "a"}

// config maps tenant "tenant-a" and the global names onto fresh mounts of srv, logging in
// with the given AppRole.
func config(t *testing.T, srv *vaulttest.Server, roleID, secretIDFile string) vault.Config {
	t.Helper()
	ta, ka := srv.Mounts(t)
	tg, kg := srv.Mounts(t)
	return vault.Config{
		Address: srv.Addr,
		TLS:     vault.TLS{CAFile: srv.CAFile},
		Auth: vault.Auth{Method: vault.AuthAppRole, AppRole: vault.AppRoleAuth{
			RoleID: roleID, SecretIDFile: secretIDFile,
		}},
		Tenants: map[string]vault.Mapping{"tenant-a": {TransitMount: ta, KVMount: ka}},
		Global:  &vault.Mapping{TransitMount: tg, KVMount: kg},
	}
}

func open(t *testing.T, cfg vault.Config, o vault.Options) *vault.Store {
	t.Helper()
	s, err := vault.New(context.Background(), cfg, o)
	if err != nil {
		t.Fatalf("vault.New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func adminStore(t *testing.T, srv *vaulttest.Server) *vault.Store {
	return open(t, config(t, srv, srv.AdminRoleID, srv.AdminSecretIDFile), vault.Options{})
}

func TestConformance(t *testing.T) {
	srv := vaulttest.Shared(t)
	kmstest.Run(t, func(t *testing.T) kmstest.Store { return adminStore(t, srv) })
}

func TestTenancy(t *testing.T) {
	ctx := context.Background()
	srv := vaulttest.Shared(t)
	ta, ka := srv.Mounts(t)
	tb, kb := srv.Mounts(t)
	cfg := vault.Config{
		Address: srv.Addr,
		TLS:     vault.TLS{CAFile: srv.CAFile},
		Auth:    vault.Auth{Method: vault.AuthAppRole, AppRole: vault.AppRoleAuth{RoleID: srv.AdminRoleID, SecretIDFile: srv.AdminSecretIDFile}},
		Tenants: map[string]vault.Mapping{
			"uk-freiburg": {TransitMount: ta, KVMount: ka},
			"uk-koeln":    {TransitMount: tb, KVMount: kb},
		},
	}
	s := open(t, cfg, vault.Options{})
	for _, n := range []string{"uk-freiburg/records", "uk-koeln/records"} {
		if err := s.CreateKey(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	dk, err := s.GenerateDataKey(ctx, kms.MustBind("uk-freiburg/records", caseA))
	if err != nil {
		t.Fatal(err)
	}
	// The same key name and context in another tenant is another key.
	if _, err := s.UnwrapDataKey(ctx, kms.MustBind("uk-koeln/records", caseA), dk.Wrapped); !errors.Is(err, kms.ErrBadWrapped) {
		t.Errorf("other tenant unwrapped: %v", err)
	}
	// The key landed where the mapping says, and only there.
	root := srv.Client().Logical()
	if sec, err := root.Read(ta + "/keys/records"); err != nil || sec == nil || sec.Data["derived"] != true {
		t.Fatalf("transit key at %s/keys/records: %v %v", ta, sec, err)
	}
	if _, err := s.PutSecret(ctx, "uk-freiburg/api-token", secret.New([]byte("t0k"))); err != nil {
		t.Fatal(err)
	}
	if sec, err := root.Read(ka + "/data/trustd/api-token"); err != nil || sec == nil {
		t.Fatalf("secret not at %s/data/trustd/api-token: %v", ka, err)
	}
	if _, err := s.GetSecret(ctx, "uk-koeln/api-token"); !errors.Is(err, kms.ErrNotFound) {
		t.Errorf("other tenant's secret: %v", err)
	}

	for _, tc := range []struct {
		name string
		want error
	}{
		{"../sys/seal", kms.ErrInvalidName},
		{"uk-freiburg/../uk-koeln/records", kms.ErrInvalidName},
		{"uk-freiburg/..%2fuk-koeln%2frecords", kms.ErrInvalidName},
		{"uk-freiburg%2f..%2fsys", kms.ErrInvalidName},
		{"sys/policy", kms.ErrNotFound},            // not a tenant
		{"auth/token", kms.ErrNotFound},            // not a tenant
		{"transit-uk-freiburg/x", kms.ErrNotFound}, // mounts are not tenants
		{"records", kms.ErrNotFound},               // no global mapping here
		{"uk-freiburg/a/b", kms.ErrInvalidName},    // transit keys are one segment
		{"uk-freiburg/records-", kms.ErrInvalidName},
		{"uk-freiburg/./records", kms.ErrInvalidName},
		{"UK-FREIBURG/records", kms.ErrInvalidName},
	} {
		if _, err := s.GenerateDataKey(ctx, bindOrZero(tc.name, caseA)); !errors.Is(err, tc.want) {
			t.Errorf("GenerateDataKey(%q) = %v, want %v", tc.name, err, tc.want)
		}
		if _, err := s.GetSecret(ctx, tc.name); tc.name != "uk-freiburg/a/b" && tc.name != "uk-freiburg/records-" && !errors.Is(err, tc.want) {
			t.Errorf("GetSecret(%q) = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestRotationRewrapMinVersion(t *testing.T) {
	ctx := context.Background()
	srv := vaulttest.Shared(t)
	s := adminStore(t, srv)
	const k = "tenant-a/records"
	if err := s.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(ctx, k); !errors.Is(err, kms.ErrExists) {
		t.Fatalf("second CreateKey: %v", err)
	}
	old, err := s.GenerateDataKey(ctx, kms.MustBind(k, caseA))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(old.Wrapped), "vault:v1:") {
		t.Fatalf("wrapped key %.9q", old.Wrapped)
	}
	if err := s.RotateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	re, err := s.RewrapDataKey(ctx, kms.MustBind(k, caseA), old.Wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(re), "vault:v2:") {
		t.Fatalf("rewrapped %.9q", re)
	}
	if _, err := s.RewrapDataKey(ctx, kms.MustBind(k, kms.Context{"case": "b"}), old.Wrapped); !errors.Is(err, kms.ErrBadWrapped) {
		t.Errorf("rewrap under another context: %v", err)
	}
	if err := s.SetMinDecryptionVersion(ctx, k, 3); err == nil {
		t.Error("min decryption version above the latest accepted")
	}
	if err := s.SetMinDecryptionVersion(ctx, k, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UnwrapDataKey(ctx, kms.MustBind(k, caseA), old.Wrapped); !errors.Is(err, kms.ErrBadWrapped) {
		t.Errorf("v1 after min_decryption_version=2: %v", err)
	}
	got, err := s.UnwrapDataKey(ctx, kms.MustBind(k, caseA), re)
	if err != nil || !got.Equal(old.Plaintext) {
		t.Fatalf("rewrapped key: %v", err)
	}
}

func TestRefusesKeyThatIsNotDerived(t *testing.T) {
	ctx := context.Background()
	srv := vaulttest.Shared(t)
	cfg := config(t, srv, srv.AdminRoleID, srv.AdminSecretIDFile)
	s := open(t, cfg, vault.Options{})
	srv.Write(t, cfg.Tenants["tenant-a"].TransitMount+"/keys/plain", map[string]any{"type": "aes256-gcm96"})
	if _, err := s.GenerateDataKey(ctx, kms.MustBind("tenant-a/plain", caseA)); !errors.Is(err, kms.ErrDenied) || !strings.Contains(err.Error(), "derived") {
		t.Fatalf("non-derived key: %v", err)
	}
}

func TestSecrets(t *testing.T) {
	ctx := context.Background()
	srv := vaulttest.Shared(t)
	cfg := config(t, srv, srv.AdminRoleID, srv.AdminSecretIDFile)
	s := open(t, cfg, vault.Options{})
	kv := cfg.Tenants["tenant-a"].KVMount
	// Written by an operator as text.
	srv.Write(t, kv+"/data/trustd/db/password", map[string]any{"data": map[string]any{"value": "hunter2"}})
	got, err := s.GetSecret(ctx, "tenant-a/db/password")
	if err != nil || string(got.Value.Reveal()) != "hunter2" || got.Version != 1 {
		t.Fatalf("text secret: %v", err)
	}
	// Binary values round-trip.
	bin := []byte{0, 1, 2, 0xff, '\n'}
	v, err := s.PutSecret(ctx, "tenant-a/db/password", secret.New(append([]byte(nil), bin...)))
	if err != nil || v != 2 {
		t.Fatalf("PutSecret = %d, %v", v, err)
	}
	got, err = s.GetSecret(ctx, "tenant-a/db/password")
	if err != nil || string(got.Value.Reveal()) != string(bin) || got.Version != 2 {
		t.Fatalf("binary secret: %v", err)
	}
	old, err := s.GetSecretVersion(ctx, "tenant-a/db/password", 1)
	if err != nil || string(old.Value.Reveal()) != "hunter2" {
		t.Fatalf("version 1: %v", err)
	}
	// Ambiguous or empty entries are refused, not guessed at.
	srv.Write(t, kv+"/data/trustd/both", map[string]any{"data": map[string]any{"value": "a", "value_base64": "Yg=="}})
	if _, err := s.GetSecret(ctx, "tenant-a/both"); err == nil {
		t.Error("secret with both fields accepted")
	}
	srv.Write(t, kv+"/data/trustd/neither", map[string]any{"data": map[string]any{"password": "x"}})
	if _, err := s.GetSecret(ctx, "tenant-a/neither"); err == nil {
		t.Error("secret without a value field accepted")
	}
	// A deleted newest version is gone.
	srv.Client().Logical().Delete(kv + "/data/trustd/db/password")
	if _, err := s.GetSecret(ctx, "tenant-a/db/password"); !errors.Is(err, kms.ErrNotFound) {
		t.Errorf("deleted secret: %v", err)
	}
}

// counter counts requests by path and remembers statuses, to see what the store did.
type counter struct {
	rt http.RoundTripper
	mu sync.Mutex
	n  map[string]int
	st map[string][]int
}

func newCounter(srv *vaulttest.Server) *counter {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CAPEM)
	return &counter{
		rt: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		n:  map[string]int{}, st: map[string][]int{},
	}
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(r)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[r.URL.Path]++
	if resp != nil {
		c.st[r.URL.Path] = append(c.st[r.URL.Path], resp.StatusCode)
	}
	return resp, err
}

func (c *counter) count(suffix string) (n int, statuses []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, k := range c.n {
		if strings.HasSuffix(p, suffix) {
			n += k
			statuses = append(statuses, c.st[p]...)
		}
	}
	return n, statuses
}

func TestPolicyDenies(t *testing.T) {
	ctx := context.Background()
	srv := vaulttest.Shared(t)
	cfg := config(t, srv, srv.ReleaseRoleID, srv.ReleaseSecretIDFile)
	adminCfg := cfg
	adminCfg.Auth = vault.Auth{Method: vault.AuthAppRole, AppRole: vault.AppRoleAuth{RoleID: srv.AdminRoleID, SecretIDFile: srv.AdminSecretIDFile}}
	admin := open(t, adminCfg, vault.Options{})
	cnt := newCounter(srv)
	s := open(t, cfg, vault.Options{Transport: cnt})
	// The release role may not create keys or write secrets: ErrDenied, and no login storm.
	for i := 0; i < 3; i++ {
		if err := s.CreateKey(ctx, "tenant-a/records"); !errors.Is(err, kms.ErrDenied) {
			t.Fatalf("CreateKey with the release role: %v", err)
		}
	}
	if _, err := s.PutSecret(ctx, "tenant-a/x", secret.New([]byte("x"))); !errors.Is(err, kms.ErrDenied) {
		t.Fatalf("PutSecret with the release role: %v", err)
	}
	if n, _ := cnt.count("/approle/login"); n != 1 {
		t.Errorf("%d logins, want 1: a denied path must not cause re-logins", n)
	}

	// A policy that lets trustd see its keys but not use them: releases are refused.
	if err := admin.CreateKey(ctx, "tenant-a/records"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client().Sys().PutPolicy("see-only", `path "+/keys/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	acfg := cfg // the same mounts
	acfg.Auth = vault.Auth{Method: vault.AuthToken, TokenFile: srv.WriteFile(t, "see-only.token", srv.Token(t, time.Hour, "see-only"))}
	ro := open(t, acfg, vault.Options{})
	if dk, err := ro.GenerateDataKey(ctx, kms.MustBind("tenant-a/records", caseA)); dk != nil || !errors.Is(err, kms.ErrDenied) {
		t.Errorf("GenerateDataKey under a denying policy: %v", err)
	}
	if sec, err := ro.GetSecret(ctx, "tenant-a/api-token"); sec != nil || !errors.Is(err, kms.ErrDenied) {
		t.Errorf("GetSecret under a denying policy: %v", err)
	}
}

func TestTokenFile(t *testing.T) {
	ctx := context.Background()
	srv := vaulttest.Shared(t)
	cfg := config(t, srv, "", "")
	tok := srv.Token(t, time.Hour, vaulttest.PolicyRelease, vaulttest.PolicyAdmin)
	cfg.Auth = vault.Auth{Method: vault.AuthToken, TokenFile: srv.WriteFile(t, t.Name()+".token", tok+"\n")}
	s := open(t, cfg, vault.Options{})
	if err := s.CreateKey(ctx, "tenant-a/k"); err != nil {
		t.Fatal(err)
	}
	srv.RevokeToken(t, tok)
	if _, err := s.GenerateDataKey(ctx, kms.MustBind("tenant-a/k", caseA)); !errors.Is(err, kms.ErrDenied) {
		t.Fatalf("revoked operator token: %v", err)
	}
	// The operator puts a new token in the file: the store picks it up.
	tok2 := srv.Token(t, time.Hour, vaulttest.PolicyRelease)
	srv.WriteFile(t, t.Name()+".token", tok2)
	time.Sleep(600 * time.Millisecond) // past the login rate limit
	if _, err := s.GenerateDataKey(ctx, kms.MustBind("tenant-a/k", caseA)); err != nil {
		t.Fatalf("after replacing the token file: %v", err)
	}
	// Refused credentials at start are an error, not a store.
	cfg.Auth.TokenFile = srv.WriteFile(t, t.Name()+".bad", "hvs.not-a-token")
	if _, err := vault.New(ctx, cfg, vault.Options{}); !errors.Is(err, kms.ErrDenied) {
		t.Fatalf("bad token at start: %v", err)
	}
}

// TestRenewal uses tokens that live 4s, at most 6s, and checks that over 8s every request
// succeeds while the store renews its token and logs in again when renewal is capped. (Whether
// a request ever met a dead token depends on timer latency on a loaded machine, so the test
// does not insist; the renewals and logins show the store acted ahead of expiry.)
func TestRenewal(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 8s")
	}
	ctx := context.Background()
	srv := vaulttest.Shared(t)
	srv.Write(t, "auth/approle/role/short", map[string]any{
		"token_policies": vaulttest.PolicyRelease + "," + vaulttest.PolicyAdmin, "token_ttl": 4, "token_max_ttl": 6,
	})
	roleID := srv.Client().Logical()
	r, err := roleID.Read("auth/approle/role/short/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid := srv.Write(t, "auth/approle/role/short/secret-id", nil)
	cfg := config(t, srv, r.Data["role_id"].(string), srv.WriteFile(t, "short.secret-id", sid.Data["secret_id"].(string)))
	cnt := newCounter(srv)
	s := open(t, cfg, vault.Options{Transport: cnt})
	if err := s.CreateKey(ctx, "tenant-a/k"); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if _, err := s.GenerateDataKey(ctx, kms.MustBind("tenant-a/k", caseA)); err != nil {
			t.Fatal(err)
		}
	}
	renewals, _ := cnt.count("/renew-self")
	logins, _ := cnt.count("/approle/login")
	if renewals < 1 || logins < 2 {
		t.Errorf("%d renewals and %d logins in 8s of 4s/6s tokens", renewals, logins)
	}
}

func TestTLSVerification(t *testing.T) {
	srv := vaulttest.Shared(t)
	for _, tc := range []struct {
		name string
		tls  vault.TLS
	}{
		{"system roots", vault.TLS{}},
		{"wrong server name", vault.TLS{CAFile: srv.CAFile, ServerName: "vault.elsewhere"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(t, srv, srv.AdminRoleID, srv.AdminSecretIDFile)
			cfg.TLS = tc.tls
			_, err := vault.New(context.Background(), cfg, vault.Options{})
			if err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("New = %v, want a certificate error", err)
			}
		})
	}
}

// TestConcurrentReleaseAcrossRevocation releases from many goroutines while the store's token is
// revoked under them: every release succeeds, and the store logs in again once, not once per
// goroutine.
func TestConcurrentReleaseAcrossRevocation(t *testing.T) {
	ctx := context.Background()
	srv := vaulttest.Start(t) // its own server: revoking logins on the shared one would hit others
	cnt := newCounter(srv)
	s := open(t, config(t, srv, srv.AdminRoleID, srv.AdminSecretIDFile), vault.Options{Transport: cnt})
	if err := s.CreateKey(ctx, "tenant-a/k"); err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	half, revoked := make(chan struct{}), make(chan struct{})
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				if w == 0 && r == rounds/2 {
					close(half) // the test goroutine revokes; the others carry on meanwhile
					<-revoked
				}
				dk, err := s.GenerateDataKey(ctx, kms.MustBind("tenant-a/k", caseA))
				if err != nil {
					errs <- err
					continue
				}
				got, err := s.UnwrapDataKey(ctx, kms.MustBind("tenant-a/k", caseA), dk.Wrapped)
				if err != nil || !got.Equal(dk.Plaintext) {
					errs <- fmt.Errorf("unwrap: %v", err)
				}
			}
		}()
	}
	<-half
	srv.RevokeLogins(t)
	close(revoked)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, _ := cnt.count("/approle/login"); n != 2 {
		t.Errorf("%d logins, want 2 (start, and once after the revocation)", n)
	}
}

// bindOrZero binds name and kc, or returns the zero Bound, which the store refuses with
// kms.ErrInvalidName, just as it refused a bad name before names were bound.
func bindOrZero(name string, kc kms.Context) kms.Bound {
	b, _ := kms.Bind(name, kc)
	return b
}
