package daemon

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest/tdx"
	"github.com/medicus-cloud/trust/kms/local"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigStrict(t *testing.T) {
	dir := t.TempDir()
	good := write(t, dir, "good.yaml", "listen: 127.0.0.1:9000\ndata_dir: /tmp/x\npolicy: /etc/p\ntoken_lifetime: 2m\nkms:\n  backend: local\n")
	c, err := LoadConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9000" || c.TokenLifetime != 2*time.Minute {
		t.Fatalf("config %+v", c)
	}
	for name, src := range map[string]string{
		"unknown key":   "listen: x\ncolour: red\n",
		"wrong type":    "dev: maybe\n",
		"bad duration":  "token_lifetime: soon\n",
		"unknown vault": "kms:\n  vault:\n    adress: http://127.0.0.1:8200\n",
	} {
		if _, err := LoadConfig(write(t, dir, "bad.yaml", src)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no policy", Config{Dev: true}, "policy: a policy file or directory is required"},
		{"unsigned outside dev", Config{Policy: "p"}, "policy_trust_keys: required outside dev mode"},
		{"vault without config", Config{Dev: true, Policy: "p", KMS: KMSConfig{Backend: "vault"}}, "kms.vault: required"},
		{"unknown backend", Config{Dev: true, Policy: "p", KMS: KMSConfig{Backend: "hsm"}}, `kms.backend: "hsm"`},
		{"long tokens", Config{Dev: true, Policy: "p", TokenLifetime: 2 * time.Hour}, "token_lifetime"},
		{"dev mode on the network", Config{Dev: true, Policy: "p", Listen: "0.0.0.0:7443"}, "dev: refused with listen"},
		{"dev mode on all interfaces", Config{Dev: true, Policy: "p", Listen: ":7443"}, "dev: refused with listen"},
		{"dev mode, HTTP on the network", Config{Dev: true, Policy: "p", HTTPListen: "10.0.0.7:8443"}, "dev: refused with http_listen"},
		{"dev mode, metrics on a host name", Config{Dev: true, Policy: "p", MetricsListen: "trustd.example:9443"}, "dev: refused with metrics_listen"},
		{"no audit origin outside dev", Config{Policy: "p"}, "audit.origin: required outside dev mode"},
		{"default audit origin outside dev", Config{Policy: "p", Audit: AuditConfig{Origin: "medicus.cloud/trust/audit"}}, "default that every deployment shares"},
		{"audit origin with a scheme", Config{Dev: true, Policy: "p", Audit: AuditConfig{Origin: "https://trust.example/audit"}}, "schema-less"},
		{"audit origin with a space", Config{Dev: true, Policy: "p", Audit: AuditConfig{Origin: "trust example"}}, "schema-less"},
		{"nonce clock skew too large", Config{Dev: true, Policy: "p", NonceClockSkew: 5 * time.Minute}, "nonce_clock_skew"},
		{"admin CA without a CRL outside dev", Config{Policy: "p", TLS: TLSConfig{CertFile: "c", KeyFile: "k", ClientCAFile: "ca"}}, "tls.client_crl_file: required with client_ca_file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Defaults()
			err := tc.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDevStartStop(t *testing.T) {
	dir := t.TempDir()
	cfg := &Config{Dev: true, DataDir: filepath.Join(dir, "data"), Policy: "../../policies/examples", Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0"}
	d, err := New(context.Background(), cfg, Env{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no graceful stop")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"nonce.key", "dev-master.key", "audit/note.key"} {
		fi, err := os.Stat(filepath.Join(cfg.DataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v", f, fi.Mode().Perm())
		}
	}
}

// The shipped sample configuration parses strictly and validates.
func TestSampleConfig(t *testing.T) {
	c, err := LoadConfig("../../cmd/trustd/trustd.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Dev || c.KMS.Backend != "vault" || c.PolicyThreshold != 2 || len(c.Verifiers) != 3 || c.Verifiers["tdx"].(*tdx.Config).PCSURL == "" {
		t.Fatalf("sample config read as %+v", c)
	}
}

// TestDataDirKeyPermissions: a nonce key (or dev master key) that trustd finds in the data
// directory is refused when others may read it, like a configured key file; one that trustd
// creates is 0600 and loads again.
func TestDataDirKeyPermissions(t *testing.T) {
	dir := t.TempDir()
	k1, err := nonceKeys(nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "nonce.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("created nonce key: %v %v, want mode 0600", fi.Mode(), err)
	}
	if k2, err := nonceKeys(nil, dir); err != nil || string(k1[0]) != string(k2[0]) {
		t.Fatalf("reloading the nonce key: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, "nonce.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := nonceKeys(nil, dir); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("world-readable nonce key: %v, want refused", err)
	}
	if _, _, err := local.MasterKey("", "", dir, true); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "dev-master.key"), 0o604); err != nil {
		t.Fatal(err)
	}
	if _, _, err := local.MasterKey("", "", dir, true); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("world-readable dev master key: %v, want refused", err)
	}
}

// TestValidateDevOnLoopback: dev mode is accepted on loopback addresses, which is where every
// developer's trustd and the tests run.
func TestValidateDevOnLoopback(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:7443", "localhost:7443", "127.0.0.53:1"} {
		c := Config{Dev: true, Policy: "p", Listen: addr, HTTPListen: addr, MetricsListen: addr}
		c.Defaults()
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
}

// TestCommandLine: every spelling of dev mode that Go's flag package accepts is dev mode, and
// flags override the file only where they were given.
func TestCommandLine(t *testing.T) {
	tests := []struct {
		args []string
		dev  bool
	}{
		{[]string{"--dev"}, true},
		{[]string{"-dev"}, true},
		{[]string{"-dev=true"}, true},
		{[]string{"--dev=1"}, true},
		{[]string{"--dev=false"}, false},
		{[]string{"--config", "x.yaml"}, false},
		{[]string{"-config=x.yaml", "-log-json"}, false},
	}
	for _, tc := range tests {
		cl, err := ParseCommandLine(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		c := Config{Dev: true, Listen: "file"}
		cl.Apply(&c)
		if cl.Dev() != tc.dev || (len(tc.args) > 0 && strings.Contains(tc.args[0], "dev") && c.Dev != tc.dev) {
			t.Errorf("%q: Dev() %v, applied %v, want %v", tc.args, cl.Dev(), c.Dev, tc.dev)
		}
		if c.Listen != "file" {
			t.Errorf("%q: listen from the file overwritten: %q", tc.args, c.Listen)
		}
	}
	cl, err := ParseCommandLine([]string{"--listen", "127.0.0.1:1", "--data-dir", "d"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := Config{Listen: "file", DataDir: "file", Policy: "file"}
	cl.Apply(&c)
	if c.Listen != "127.0.0.1:1" || c.DataDir != "d" || c.Policy != "file" {
		t.Errorf("applied %+v", c)
	}
	for _, bad := range [][]string{{"--no-such-flag"}, {"stray"}, {"--dev", "x"}} {
		if _, err := ParseCommandLine(bad, io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
