// Package vaulttest runs a real HashiCorp Vault server for tests: not a dev server, but one with
// file storage, a TLS listener under a CA made for the test, initialised and unsealed with a
// single key share, so that it survives Stop and Start and can be sealed and unsealed like a
// production server.
//
// Start finds the binary (MEDICUS_VAULT_BIN, else the cache that scripts/install-vault.sh fills),
// starts it on 127.0.0.1 on a free port with a temporary HOME, enables transit and KV v2
// (TransitMount, KVMount), AppRole and two roles (see PolicyRelease and PolicyAdmin), and stops
// it in t.Cleanup. When the binary is missing the
// test is skipped, except under CI=true, where it fails: CI never skips silently.
//
// Packages that want one server for all their tests call Main from TestMain and Shared from
// each test.
package vaulttest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Version is the Vault release the helpers expect.
const Version = "v1.21.0"

// Policies written by Start. Mount paths in the grants are single-segment wildcards ("+"), so
// any transit or KV mount a test enables is covered; nothing reaches sys/ or auth/ beyond the
// token's own endpoints in Vault's default policy.
const (
	PolicyRelease = "medicus-trustd"
	PolicyAdmin   = "medicus-trustd-admin"
)

const releaseHCL = `
path "+/keys/*"            { capabilities = ["read"] }
path "+/datakey/plaintext/*" { capabilities = ["update"] }
path "+/decrypt/*"         { capabilities = ["update"] }
path "+/data/trustd/*"     { capabilities = ["read"] }
`

const adminHCL = `
path "+/keys/*"            { capabilities = ["create", "read", "update", "delete"] }
path "+/rewrap/*"          { capabilities = ["update"] }
path "+/data/trustd/*"     { capabilities = ["create", "read", "update"] }
path "+/metadata/trustd/*" { capabilities = ["read", "list"] }
`

// Mounts enabled by Start: transit and KV version 2. Tests that must not see each other's keys
// use Mounts for fresh ones.
const (
	TransitMount = "transit"
	KVMount      = "kv"
)

// Roles created by Start.
const (
	RoleRelease = "trustd"       // PolicyRelease only: what trustd needs to release
	RoleAdmin   = "trustd-admin" // PolicyRelease and PolicyAdmin: the conformance suite
)

// Server is a running Vault.
type Server struct {
	// Addr is the API address, https://127.0.0.1:<port>.
	Addr string
	// CAFile holds the PEM of the CA that signed the listener's certificate; CAPEM is the same.
	CAFile string
	CAPEM  []byte
	// RootToken can do anything; tests use it to provision and to break things.
	RootToken string
	// Dir is the server's temporary directory (storage, config, logs, credential files).
	Dir string
	// AppRole credentials: role IDs, and files holding secret IDs (0600).
	ReleaseRoleID, ReleaseSecretIDFile string
	AdminRoleID, AdminSecretIDFile     string

	bin, cfgFile, logFile, unsealKey string
	hc, h2                           *http.Client

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	seq    atomic.Uint64
}

// Binary returns the path of the Vault binary: $MEDICUS_VAULT_BIN, else
// $MEDICUS_CACHE, $XDG_CACHE_HOME/medicus-trust or ~/.cache/medicus-trust, then
// vault-v1.21.0/vault. It is an error if there is no executable there.
func Binary() (string, error) {
	if b := os.Getenv("MEDICUS_VAULT_BIN"); b != "" {
		return b, checkExec(b)
	}
	cache := os.Getenv("MEDICUS_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", err
			}
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "medicus-trust")
	}
	b := filepath.Join(cache, "vault-"+Version, "vault")
	return b, checkExec(b)
}

func checkExec(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", p)
	}
	return nil
}

// Start starts a provisioned server that t.Cleanup stops.
func Start(t testing.TB) *Server {
	t.Helper()
	s := start(t)
	t.Cleanup(func() { s.shutdown() })
	return s
}

func start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		msg := fmt.Sprintf("vaulttest: no Vault binary (%v); run scripts/install-vault.sh or set MEDICUS_VAULT_BIN", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	s, err := launch(bin)
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	return s
}

func launch(bin string) (_ *Server, err error) {
	dir, err := os.MkdirTemp("", "vaulttest-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, bin: bin}
	defer func() {
		if err != nil {
			s.shutdown()
		}
	}()
	if err := s.writeTLS(); err != nil {
		return nil, err
	}
	s.httpClient() // built once here, so concurrent tests only read it
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.Addr = fmt.Sprintf("https://127.0.0.1:%d", port)
	s.cfgFile = filepath.Join(dir, "config.hcl")
	s.logFile = filepath.Join(dir, "vault.log")
	cfg := fmt.Sprintf(`storage "file" { path = %q }
listener "tcp" {
  address       = "127.0.0.1:%d"
  tls_cert_file = %q
  tls_key_file  = %q
}
api_addr      = %q
disable_mlock = true
ui            = false
log_level     = "warn"
`, filepath.Join(dir, "data"), port, filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), s.Addr)
	if err := os.WriteFile(s.cfgFile, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if err := s.run(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root := s.apiClient("")
	init, err := root.Sys().InitWithContext(ctx, &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	s.unsealKey, s.RootToken = init.KeysB64[0], init.RootToken
	if err := s.unseal(ctx); err != nil {
		return nil, err
	}
	if err := s.provision(ctx); err != nil {
		return nil, fmt.Errorf("provision: %w%s", err, s.logTail())
	}
	return s, nil
}

// run starts the process and waits until it answers.
func (s *Server) run() error {
	logf, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, "server", "-config="+s.cfgFile)
	cmd.Dir = s.Dir
	cmd.Env = []string{"HOME=" + s.Dir, "PATH=/usr/bin:/bin"}
	cmd.Stdout, cmd.Stderr = logf, logf
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("vault exited during start%s", s.logTail())
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, s.Addr+"/v1/sys/health", nil)
		if resp, err := s.httpClient().Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vault did not answer within 60s%s", s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logFile)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	if len(b) == 0 {
		return ""
	}
	return "\nvault log:\n" + string(b)
}

func (s *Server) httpClient() *http.Client {
	if s.hc == nil {
		s.hc = s.newHTTPClient(false)
	}
	return s.hc
}

// newHTTPClient trusts the server's CA; with h2 it talks HTTP/2, otherwise HTTP/1.1
// (net/http's default for a transport with its own TLS settings).
func (s *Server) newHTTPClient(h2 bool) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM)
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: h2,
			MaxIdleConns:      4,
		},
	}
}

// apiClient builds a vault/api client for this server and token over HTTP/1.1, ignoring
// VAULT_* variables.
func (s *Server) apiClient(token string) *api.Client { return s.apiClientOver(s.httpClient(), token) }

func (s *Server) apiClientOver(hc *http.Client, token string) *api.Client {
	c, err := api.NewClient(&api.Config{Address: s.Addr, HttpClient: hc, MaxRetries: 0, Timeout: 30 * time.Second})
	if err != nil {
		panic(err) // only a malformed address could fail, and ours is not
	}
	c.ClearNamespace()
	c.SetHeaders(http.Header{api.RequestHeaderName: []string{"true"}})
	c.SetWrappingLookupFunc(func(string, string) string { return "" })
	if token == "" {
		c.ClearToken()
	} else {
		c.SetToken(token)
	}
	return c
}

// Client returns a client with the root token. Benchmarks use it to call transit directly.
func (s *Server) Client() *api.Client { return s.apiClient(s.RootToken) }

// ClientWithToken returns a client carrying token, over HTTP/1.1.
func (s *Server) ClientWithToken(token string) *api.Client { return s.apiClient(token) }

// DirectClient returns a client carrying token over one reused HTTP/2 connection, the
// transport trustd's store uses: the floor of the benchmarks that measure what trustd adds to
// a Vault call.
func (s *Server) DirectClient(token string) *api.Client {
	if s.h2 == nil {
		s.h2 = s.newHTTPClient(true)
	}
	return s.apiClientOver(s.h2, token)
}

func (s *Server) unseal(ctx context.Context) error {
	c := s.apiClient("")
	if _, err := c.Sys().UnsealWithContext(ctx, s.unsealKey); err != nil {
		return fmt.Errorf("unseal: %w", err)
	}
	// Active and ready once health says 200.
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Addr+"/v1/sys/health", nil)
		if resp, err := s.httpClient().Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not active after unseal: %w%s", ctx.Err(), s.logTail())
}

func (s *Server) provision(ctx context.Context) error {
	c := s.Client()
	if err := c.Sys().MountWithContext(ctx, TransitMount, &api.MountInput{Type: "transit"}); err != nil {
		return err
	}
	if err := c.Sys().MountWithContext(ctx, KVMount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		return err
	}
	if err := c.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		return err
	}
	if err := c.Sys().PutPolicyWithContext(ctx, PolicyRelease, releaseHCL); err != nil {
		return err
	}
	if err := c.Sys().PutPolicyWithContext(ctx, PolicyAdmin, adminHCL); err != nil {
		return err
	}
	if err := s.kvReady(ctx, KVMount); err != nil {
		return err
	}
	var err error
	s.ReleaseRoleID, s.ReleaseSecretIDFile, err = s.appRole(ctx, RoleRelease, PolicyRelease)
	if err != nil {
		return err
	}
	s.AdminRoleID, s.AdminSecretIDFile, err = s.appRole(ctx, RoleAdmin, PolicyRelease+","+PolicyAdmin)
	return err
}

func (s *Server) appRole(ctx context.Context, role, policies string) (roleID, secretIDFile string, err error) {
	c := s.Client().Logical()
	if _, err := c.WriteWithContext(ctx, "auth/approle/role/"+role, map[string]any{
		"token_policies": policies, "token_ttl": "1h", "token_max_ttl": "4h",
	}); err != nil {
		return "", "", err
	}
	r, err := c.ReadWithContext(ctx, "auth/approle/role/"+role+"/role-id")
	if err != nil {
		return "", "", err
	}
	sid, err := c.WriteWithContext(ctx, "auth/approle/role/"+role+"/secret-id", nil)
	if err != nil {
		return "", "", err
	}
	secretIDFile = filepath.Join(s.Dir, role+".secret-id")
	if err := os.WriteFile(secretIDFile, []byte(sid.Data["secret_id"].(string)), 0o600); err != nil {
		return "", "", err
	}
	return r.Data["role_id"].(string), secretIDFile, nil
}

// SetRoleTTL changes the token TTLs an AppRole hands out, for renewal tests.
func (s *Server) SetRoleTTL(t testing.TB, role string, ttl, maxTTL time.Duration) {
	t.Helper()
	s.Write(t, "auth/approle/role/"+role, map[string]any{
		"token_ttl": int(ttl.Seconds()), "token_max_ttl": int(maxTTL.Seconds()),
	})
}

// Write writes data at path with the root token.
func (s *Server) Write(t testing.TB, path string, data map[string]any) *api.Secret {
	t.Helper()
	sec, err := s.Client().Logical().Write(path, data)
	if err != nil {
		t.Fatalf("vaulttest: write %s: %v", path, err)
	}
	return sec
}

// Mounts enables a transit mount and a KV version 2 mount with fresh unique names and returns
// them, so tests sharing a server never see each other's keys.
func (s *Server) Mounts(t testing.TB) (transit, kv string) {
	t.Helper()
	n := s.seq.Add(1)
	transit, kv = fmt.Sprintf("transit-t%d", n), fmt.Sprintf("kv-t%d", n)
	s.EnableTransit(t, transit)
	s.EnableKV(t, kv)
	return transit, kv
}

// EnableTransit enables the transit engine at mount.
func (s *Server) EnableTransit(t testing.TB, mount string) {
	t.Helper()
	if err := s.Client().Sys().Mount(mount, &api.MountInput{Type: "transit"}); err != nil {
		t.Fatalf("vaulttest: enable transit at %s: %v", mount, err)
	}
}

// EnableKV enables KV version 2 at mount.
func (s *Server) EnableKV(t testing.TB, mount string) {
	t.Helper()
	if err := s.Client().Sys().Mount(mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("vaulttest: enable kv-v2 at %s: %v", mount, err)
	}
	if err := s.kvReady(context.Background(), mount); err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
}

// kvReady waits for a new KV v2 mount: it upgrades its storage in the background right after
// mounting, and until then writes fail.
func (s *Server) kvReady(ctx context.Context, mount string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := s.Client().Logical().ReadWithContext(ctx, mount+"/config")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kv-v2 at %s not ready: %w", mount, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Token creates a token with the given policies and TTL (0: the default) and returns it.
func (s *Server) Token(t testing.TB, ttl time.Duration, policies ...string) string {
	t.Helper()
	req := &api.TokenCreateRequest{Policies: policies}
	if ttl > 0 {
		req.TTL = ttl.String()
	}
	sec, err := s.Client().Auth().Token().Create(req)
	if err != nil {
		t.Fatalf("vaulttest: create token: %v", err)
	}
	return sec.Auth.ClientToken
}

// WriteFile writes a credential file (0600) in the server's directory and returns its path.
func (s *Server) WriteFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(s.Dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// RevokeLogins revokes every token issued through the AppRole login: "our token revoked".
func (s *Server) RevokeLogins(t testing.TB) {
	t.Helper()
	s.Write(t, "sys/leases/revoke-prefix/auth/approle/login", map[string]any{"sync": true})
}

// RevokeToken revokes one token.
func (s *Server) RevokeToken(t testing.TB, token string) {
	t.Helper()
	if err := s.Client().Auth().Token().RevokeTree(token); err != nil {
		t.Fatalf("vaulttest: revoke token: %v", err)
	}
}

// Seal seals the server: every call fails with 503 until Unseal.
func (s *Server) Seal(t testing.TB) {
	t.Helper()
	if err := s.Client().Sys().Seal(); err != nil {
		t.Fatalf("vaulttest: seal: %v", err)
	}
}

// Unseal unseals the server and waits until it is active.
func (s *Server) Unseal(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.unseal(ctx); err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
}

// Stop stops the process; the storage stays, so Start brings the same Vault back.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.stopProcess()
}

// Start starts a stopped server again on the same address and unseals it.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if err := s.run(); err != nil {
		t.Fatalf("vaulttest: restart: %v", err)
	}
	s.Unseal(t)
}

func (s *Server) stopProcess() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (s *Server) shutdown() {
	s.stopProcess()
	for _, c := range []*http.Client{s.hc, s.h2} {
		if c != nil {
			c.CloseIdleConnections()
		}
	}
	if s.Dir != "" {
		_ = os.RemoveAll(s.Dir)
	}
}

var (
	sharedMu  sync.Mutex
	shared    *Server
	sharedErr error
	inMain    bool
)

// Main runs a package's tests and then stops the server that Shared started, if any:
//
//	func TestMain(m *testing.M) { vaulttest.Main(m) }
func Main(m *testing.M) {
	sharedMu.Lock()
	inMain = true
	sharedMu.Unlock()
	code := m.Run()
	sharedMu.Lock()
	if shared != nil {
		shared.shutdown()
	}
	sharedMu.Unlock()
	os.Exit(code)
}

// Shared returns the package's shared server, starting it on first use. Tests must not stop or
// seal it (use Start for fault tests) and should use Mounts for their own keys.
func Shared(t testing.TB) *Server {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if !inMain {
		t.Fatal("vaulttest: Shared needs TestMain to call vaulttest.Main")
	}
	if shared == nil && sharedErr == nil {
		bin, err := Binary()
		if err != nil {
			msg := fmt.Sprintf("vaulttest: no Vault binary (%v); run scripts/install-vault.sh or set MEDICUS_VAULT_BIN", err)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		shared, sharedErr = launch(bin)
	}
	if sharedErr != nil {
		t.Fatalf("vaulttest: shared server: %v", sharedErr)
	}
	return shared
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeTLS makes a CA and a listener certificate for 127.0.0.1 and localhost.
func (s *Server) writeTLS() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vaulttest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	s.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	s.CAFile = filepath.Join(s.Dir, "ca.pem")
	files := map[string][]byte{
		"ca.pem":         s.CAPEM,
		"server.pem":     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"server-key.pem": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(s.Dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}
