package vault

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/kms"
)

// fakeVault is an httptest stand-in for Vault's HTTP API, for what a real server cannot be made
// to do on demand (5xx bursts) and to see exactly what goes over the wire. The real server runs
// in vault_test.go.
type fakeVault struct {
	t  *testing.T
	mu sync.Mutex
	// requests in order: method, RequestURI, headers, body
	reqs []fakeReq
	// handle answers a request; nil answers 404.
	handle func(r fakeReq) (int, string)
}

type fakeReq struct {
	method, uri string
	header      http.Header
	body        string
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	req := fakeReq{r.Method, r.RequestURI, r.Header.Clone(), string(b)}
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	h := f.handle
	f.mu.Unlock()
	status, body := http.StatusNotFound, `{"errors":[]}`
	switch {
	case r.URL.Path == "/v1/auth/token/lookup-self":
		status, body = 200, `{"data":{"ttl":0,"renewable":false}}`
	case h != nil:
		status, body = h(req)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func (f *fakeVault) requests() []fakeReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeReq(nil), f.reqs...)
}

func (f *fakeVault) setHandler(h func(r fakeReq) (int, string)) {
	f.mu.Lock()
	f.handle = h
	f.reqs = nil
	f.mu.Unlock()
}

// instant makes retry backoff immediate; token renewal, hours away, keeps real timers.
func instant(d time.Duration) <-chan time.Time {
	if d >= time.Minute {
		return time.After(d)
	}
	c := make(chan time.Time, 1)
	c <- time.Now()
	return c
}

func newFake(t *testing.T, edit func(*Config)) (*fakeVault, *Store) {
	t.Helper()
	f := &fakeVault{t: t}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("hvs.fake-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Address: srv.URL,
		Auth:    Auth{Method: AuthToken, TokenFile: tok},
		Tenants: map[string]Mapping{"uk-freiburg": {}},
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(context.Background(), cfg, Options{After: instant})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return f, s
}

var derivedKey = `{"data":{"derived":true,"type":"aes256-gcm96","latest_version":1}}`

// TestHostileNamesNeverReachVault checks at the HTTP layer: every request the store sends is
// under the tenant's mounts or the token endpoints, and hostile names send nothing at all.
func TestHostileNamesNeverReachVault(t *testing.T) {
	f, s := newFake(t, nil)
	f.setHandler(func(r fakeReq) (int, string) {
		if strings.HasSuffix(r.uri, "/keys/records") {
			return 200, derivedKey
		}
		if strings.HasSuffix(r.uri, "/.shredded") {
			return 404, `{"errors":[]}` // no tombstone
		}
		return 400, `{"errors":["nope"]}`
	})
	ctx := context.Background()
	hostile := []string{
		"../sys/seal", "uk-freiburg/../../sys/seal", "uk-freiburg/..%2f..%2fsys%2fseal", "uk-freiburg%2f..",
		"uk-freiburg/%2e%2e/sys", "uk-freiburg/records/../../../sys", "uk-freiburg/records?x=1",
		"uk-freiburg/records#x", "uk-freiburg/rec ords", "uk-freiburg/\u2025", "sys/seal", "auth/token/create",
		"cubbyhole/x", "identity/x", "kv-uk-freiburg/x", "transit-uk-freiburg/records",
	}
	for _, n := range hostile {
		s.GenerateDataKey(ctx, bindOrZero(n, kms.Context{}))
		s.UnwrapDataKey(ctx, bindOrZero(n, kms.Context{}), []byte("vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
		s.GetSecret(ctx, n)
		s.PutSecret(ctx, n, nil)
		s.CreateKey(ctx, n)
		s.RotateKey(ctx, n)
	}
	if reqs := f.requests(); len(reqs) != 0 {
		t.Fatalf("hostile names reached Vault: %+v", reqs[0])
	}
	s.GenerateDataKey(ctx, kms.MustBind("uk-freiburg/records", kms.Context{}))
	s.GetSecret(ctx, "uk-freiburg/db/password")
	want := []string{
		"/v1/transit-uk-freiburg/keys/records",
		"/v1/kv-uk-freiburg/data/trustd/records/.shredded", // the key's tombstone, in its tenant's KV mount
		"/v1/transit-uk-freiburg/datakey/plaintext/records",
		"/v1/transit-uk-freiburg/keys/records", // the 400 makes it look again
		"/v1/kv-uk-freiburg/data/trustd/db/password",
	}
	reqs := f.requests()
	if len(reqs) != len(want) {
		t.Fatalf("%d requests, want %d: %+v", len(reqs), len(want), reqs)
	}
	for i, r := range reqs {
		if r.uri != want[i] {
			t.Errorf("request %d: %s %s, want %s", i, r.method, r.uri, want[i])
		}
	}
}

// TestEnvironmentIgnored: vault/api reads VAULT_* variables on its own; none of them may leak
// into what the store sends.
func TestEnvironmentIgnored(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "hvs.from-env")
	t.Setenv("VAULT_NAMESPACE", "env-ns")
	t.Setenv("VAULT_HEADERS", `{"X-Env":"1"}`)
	t.Setenv("VAULT_WRAP_TTL", "5m")
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	t.Setenv("VAULT_MAX_RETRIES", "7")
	f, s := newFake(t, func(c *Config) { c.Namespace = "health/prod" })
	f.setHandler(func(fakeReq) (int, string) { return 404, `{"errors":[]}` })
	s.GetSecret(context.Background(), "uk-freiburg/x")
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	h := reqs[0].header
	if h.Get("X-Vault-Token") != "hvs.fake-token" || h.Get("X-Vault-Namespace") != "health/prod" ||
		h.Get("X-Env") != "" || h.Get("X-Vault-Wrap-TTL") != "" {
		t.Fatalf("headers influenced by the environment: token ok=%t ns=%q env=%q wrap=%q",
			h.Get("X-Vault-Token") == "hvs.fake-token", h.Get("X-Vault-Namespace"), h.Get("X-Env"), h.Get("X-Vault-Wrap-TTL"))
	}
}

func TestRetries(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		statuses []int // answers in order; the last repeats
		attempts int
		want     error // nil: success
		calls    int
	}{
		{"5xx then ok", []int{502, 500, 200}, 3, nil, 3},
		{"5xx exhausts", []int{503}, 3, kms.ErrUnavailable, 3},
		{"one attempt", []int{500}, 1, kms.ErrUnavailable, 1},
		{"400 never retried", []int{400}, 3, kms.ErrBadWrapped, 1},
		{"404 never retried", []int{404}, 3, kms.ErrNotFound, 1},
		{"429 never retried", []int{429}, 3, kms.ErrUnavailable, 1},
		{"403 is denial", []int{403}, 3, kms.ErrDenied, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, s := newFake(t, func(c *Config) { c.Retry.Attempts = tc.attempts })
			var mu sync.Mutex
			n := 0
			f.setHandler(func(r fakeReq) (int, string) {
				if strings.Contains(r.uri, "/keys/") {
					return 200, derivedKey
				}
				if strings.HasSuffix(r.uri, "/.shredded") {
					return 404, `{"errors":[]}` // no tombstone
				}
				mu.Lock()
				defer mu.Unlock()
				st := tc.statuses[min(n, len(tc.statuses)-1)]
				n++
				if st == 200 {
					return 200, `{"data":{"plaintext":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}`
				}
				return st, `{"errors":["boom"]}`
			})
			_, err := s.UnwrapDataKey(ctx, kms.MustBind("uk-freiburg/records", kms.Context{}), []byte("vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if n != tc.calls {
				t.Fatalf("%d decrypt calls, want %d", n, tc.calls)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens there now
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("hvs.x"), 0o600)
	s, err := New(context.Background(), Config{
		Address: addr, Auth: Auth{Method: AuthToken, TokenFile: tok},
		Tenants: map[string]Mapping{"t": {}}, Retry: Retry{Attempts: 2},
	}, Options{After: instant})
	if err != nil {
		t.Fatalf("New with Vault down: %v", err)
	}
	defer s.Close()
	if _, err := s.GetSecret(context.Background(), "t/x"); !errors.Is(err, kms.ErrUnavailable) {
		t.Fatalf("GetSecret = %v", err)
	}
}

func TestKubernetesLogin(t *testing.T) {
	jwt := filepath.Join(t.TempDir(), "sa-token")
	os.WriteFile(jwt, []byte("eyJ.fake.jwt"), 0o600)
	f := &fakeVault{t: t}
	var (
		mu    sync.Mutex
		login fakeReq
	)
	f.handle = func(r fakeReq) (int, string) {
		if r.uri == "/v1/auth/k8s-prod/login" {
			mu.Lock()
			login = r
			mu.Unlock()
			return 200, `{"auth":{"client_token":"hvs.k8s","lease_duration":3600,"renewable":true}}`
		}
		return 404, `{"errors":[]}`
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s, err := New(context.Background(), Config{
		Address: srv.URL,
		Auth:    Auth{Method: AuthKubernetes, Kubernetes: KubernetesAuth{Mount: "k8s-prod", Role: "trustd", JWTFile: jwt}},
		Tenants: map[string]Mapping{"t": {}},
	}, Options{After: instant})
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]string
	mu.Lock()
	defer mu.Unlock()
	if err := json.Unmarshal([]byte(login.body), &body); err != nil || body["role"] != "trustd" || body["jwt"] != "eyJ.fake.jwt" {
		t.Fatalf("login body %q", login.body)
	}
	s.GetSecret(context.Background(), "t/x")
	reqs := f.requests()
	if last := reqs[len(reqs)-1]; last.header.Get("X-Vault-Token") != "hvs.k8s" {
		t.Fatal("request without the login token")
	}
	s.Close()
	if reqs := f.requests(); reqs[len(reqs)-1].uri != "/v1/auth/token/revoke-self" {
		t.Fatalf("Close did not revoke the login token: last request %s", reqs[len(reqs)-1].uri)
	}
	if _, err := s.GetSecret(context.Background(), "t/x"); !errors.Is(err, kms.ErrUnavailable) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestErrorsCarryNoSecrets(t *testing.T) {
	f, s := newFake(t, nil)
	f.setHandler(func(r fakeReq) (int, string) {
		if strings.Contains(r.uri, "/keys/") {
			return 200, derivedKey
		}
		// Malformed success: the plaintext is the wrong size.
		return 200, `{"data":{"plaintext":"c2VjcmV0LXZhbHVlLXNob3VsZC1ub3QtbGVhaw==","ciphertext":"vault:v1:xx"}}`
	})
	_, err := s.GenerateDataKey(context.Background(), kms.MustBind("uk-freiburg/records", kms.Context{}))
	if err == nil || strings.Contains(err.Error(), "c2VjcmV0") || strings.Contains(err.Error(), "secret-value") {
		t.Fatalf("err = %v", err)
	}
}

// bindOrZero binds name and kc, or returns the zero Bound, which every store refuses with
// kms.ErrInvalidName, just as it refused a bad name before names were bound.
func bindOrZero(name string, kc kms.Context) kms.Bound {
	b, _ := kms.Bind(name, kc)
	return b
}
