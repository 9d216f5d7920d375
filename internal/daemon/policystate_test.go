package daemon

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest/collstore"
	"github.com/medicus-cloud/trust/audit/storage/postgres"
	"github.com/medicus-cloud/trust/audit/storage/postgres/pgtest"
	"github.com/medicus-cloud/trust/policies"
)

// TestPolicyRollbackAcrossFreshDataDirs: with the PostgreSQL audit log, the policy rollback
// high-water mark lives in the database. A trustd that loaded bundle version 2 and a second
// trustd on an empty data directory (a restarted pod: its emptyDir is gone) share it, so the
// second refuses version 1. A mark left in a data directory's state file is carried over.
func TestPolicyRollbackAcrossFreshDataDirs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server")
	}
	pg := pgtest.Start(t)
	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	trust := write(t, dir, "team.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	src, err := os.ReadFile("../../policies/examples/hello.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bundle := func(name string, version uint64) string {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "hello.yaml"), bytes.Replace(src, []byte("hello/api-token"), []byte("hello/"+name), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := policies.SignDir(d, priv, version, rand.Reader); err != nil {
			t.Fatal(err)
		}
		return d
	}
	v1, v2, v3 := bundle("v1", 1), bundle("v2", 2), bundle("v3", 3)
	const origin = "trust.test.example/audit"
	skey, _, err := postgres.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	noteKey, dsn := write(t, dir, "note.key", skey), write(t, dir, "dsn", pg.DSN())
	startAs := func(dataDir, policy, origin string) (*Daemon, error) {
		cfg := &Config{Dev: true, DataDir: filepath.Join(dir, dataDir), Policy: policy, PolicyTrustKeys: trust, PolicyThreshold: 1,
			Listen: "127.0.0.1:0", Audit: AuditConfig{Backend: "postgres", DSNFile: dsn, KeyFile: noteKey, Origin: origin}}
		d, err := New(t.Context(), cfg, Env{}, slog.New(slog.DiscardHandler))
		if err == nil {
			t.Cleanup(func() { d.Close() })
		}
		return d, err
	}
	start := func(dataDir, policy string) (*Daemon, error) { return startAs(dataDir, policy, origin) }
	// The note key names the log; a configured origin that differs is refused.
	if _, err := startAs("mismatch", v2, "other.test.example/audit"); err == nil || !strings.Contains(err.Error(), "audit.origin") {
		t.Fatalf("note key of %q with audit.origin other.test.example/audit: %v", origin, err)
	}
	a, err := start("a", v2)
	if err != nil {
		t.Fatal(err)
	}
	if v := a.policies.Current().Version; v != 2 {
		t.Fatalf("replica a: version %d", v)
	}
	if _, ok := a.coll.store.(*collstore.PG); !ok {
		t.Errorf("collateral store %T with the postgres audit backend, want the shared one", a.coll.store)
	}
	if _, err := start("fresh", v1); !errors.Is(err, policies.ErrRollback) {
		t.Fatalf("fresh data directory offered version 1 after version 2: %v, want ErrRollback", err)
	}
	// A data directory whose state file records version 3 (from before PostgreSQL held the
	// mark) raises the shared mark when it starts.
	if err := os.MkdirAll(filepath.Join(dir, "old"), 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := os.ReadFile(filepath.Join(dir, "a", "policy-state.json"))
	if err == nil {
		t.Fatalf("replica a wrote a local state file %s: the mark belongs in PostgreSQL", st)
	}
	fs := &policies.FileState{Path: filepath.Join(dir, "old", "policy-state.json")}
	if _, err := fs.Advance(t.Context(), policies.State{Version: 3, Digest: mustBundle(t, v3, trust).Digest}); err != nil {
		t.Fatal(err)
	}
	if _, err := start("old", v3); err != nil {
		t.Fatal(err)
	}
	if _, err := start("fresh2", v2); !errors.Is(err, policies.ErrRollback) {
		t.Fatalf("version 2 after a carried-over version 3: %v, want ErrRollback", err)
	}
}

func mustBundle(t *testing.T, dir, trust string) *policies.Bundle {
	t.Helper()
	p, err := os.ReadFile(trust)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := policies.ParseTrustKeys(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := policies.LoadSigned(dir, policies.VerifyOptions{Keys: keys, Threshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
