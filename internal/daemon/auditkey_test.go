package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest/snp"
)

// The audit context key: an operator's file outside dev mode (checked like every key file),
// one trustd keeps in its data directory in dev mode, and required by the configuration.
func TestAuditContextKey(t *testing.T) {
	dir := t.TempDir()
	k1, from, err := AuditContextKey("", dir, true)
	if err != nil || !strings.Contains(from, "INSECURE") {
		t.Fatalf("dev key: %v (%s)", err, from)
	}
	fi, err := os.Stat(filepath.Join(dir, "dev-audit-context.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dev key file: %v %v", fi, err)
	}
	k2, _, err := AuditContextKey("", dir, true)
	if err != nil || k1.Digest("t", []byte("c")) != k2.Digest("t", []byte("c")) {
		t.Fatalf("dev key not kept across restarts: %v", err)
	}
	if _, _, err := AuditContextKey("", dir, false); err == nil || !strings.Contains(err.Error(), "audit.context_key_file") {
		t.Fatalf("no key outside dev mode: %v", err)
	}
	file := filepath.Join(dir, "context.key")
	os.WriteFile(file, []byte(strings.Repeat("ab", 32)+"\n"), 0o644)
	if _, _, err := AuditContextKey(file, dir, false); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("world-readable key file: %v", err)
	}
	os.Chmod(file, 0o600)
	if _, _, err := AuditContextKey(file, dir, false); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(file, []byte("short"), 0o600)
	if _, _, err := AuditContextKey(file, dir, false); err == nil || strings.Contains(err.Error(), "short") {
		t.Fatalf("bad key file: %v", err)
	}
	c := Config{Policy: "p", PolicyTrustKeys: "k", TLS: TLSConfig{CertFile: "c", KeyFile: "k"}, Audit: AuditConfig{Origin: "trust.test.example/audit"},
		Verifiers: Verifiers{"snp": &snp.Config{}}}
	c.Defaults()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "audit.context_key_file: required outside dev mode") {
		t.Fatalf("Validate without a context key: %v", err)
	}
	c.Audit.ContextKeyFile = file
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
