package pgstate_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/medicus-cloud/trust/audit/storage/postgres/pgtest"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/policies/pgstate"
)

func open(t *testing.T, dsn string) *pgstate.Store {
	t.Helper()
	s, err := pgstate.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestAdvanceNeverLowers: replicas racing to record versions leave the highest, and a lower
// version never replaces a higher one.
func TestAdvanceNeverLowers(t *testing.T) {
	pg := pgtest.Start(t)
	a, b := open(t, pg.DSN()), open(t, pg.DSN())
	ctx := t.Context()
	if st, err := a.Load(ctx); err != nil || st.Version != 0 {
		t.Fatalf("empty table: %+v %v", st, err)
	}
	if st, err := a.Advance(ctx, policies.State{Version: 3, Digest: []byte("three")}); err != nil || st.Version != 3 {
		t.Fatalf("advance to 3: %+v %v", st, err)
	}
	st, err := b.Advance(ctx, policies.State{Version: 2, Digest: []byte("two")})
	if err != nil || st.Version != 3 || !bytes.Equal(st.Digest, []byte("three")) {
		t.Fatalf("advance to 2 over 3: %+v %v, want 3 kept", st, err)
	}
	var wg sync.WaitGroup
	for v := uint64(4); v < 24; v++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if v%2 == 0 {
				s = b
			}
			if _, err := s.Advance(ctx, policies.State{Version: v, Digest: []byte{byte(v)}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if st, err := b.Load(ctx); err != nil || st.Version != 23 || !bytes.Equal(st.Digest, []byte{23}) {
		t.Fatalf("after the race: %+v %v, want version 23", st, err)
	}
}

// TestReplicaOnFreshStorageRefusesRollback: one replica loads bundle version 2; a replica that
// starts on empty local storage (a restarted pod whose emptyDir is gone) is offered version 1
// and refuses it, because the high-water mark lives in PostgreSQL.
func TestReplicaOnFreshStorageRefusesRollback(t *testing.T) {
	pg := pgtest.Start(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	keys, err := policies.ParseTrustKeys(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../examples/hello.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bundle := func(version uint64, secret string) string {
		dir := filepath.Join(t.TempDir(), "bundle")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "hello.yaml"), bytes.Replace(src, []byte("hello/api-token"), []byte(secret), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := policies.SignDir(dir, priv, version, rand.Reader); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	v1, v2 := bundle(1, "hello/v1"), bundle(2, "hello/v2")
	ctx := t.Context()

	a, err := policies.OpenStore(ctx, policies.StoreOptions{Dir: v2, Keys: keys, Threshold: 1, State: open(t, pg.DSN())})
	if err != nil {
		t.Fatal(err)
	}
	if a.Current().Version != 2 {
		t.Fatalf("replica a: version %d", a.Current().Version)
	}
	_, err = policies.OpenStore(ctx, policies.StoreOptions{Dir: v1, Keys: keys, Threshold: 1, State: open(t, pg.DSN())})
	if !errors.Is(err, policies.ErrRollback) {
		t.Fatalf("replica on fresh storage offered version 1 after version 2: %v, want ErrRollback", err)
	}
	// The same version with other content is refused too; the same bundle loads.
	other := bundle(2, "hello/other")
	if _, err := policies.OpenStore(ctx, policies.StoreOptions{Dir: other, Keys: keys, Threshold: 1, State: open(t, pg.DSN())}); !errors.Is(err, policies.ErrRollback) {
		t.Fatalf("other content at version 2: %v, want ErrRollback", err)
	}
	if _, err := policies.OpenStore(ctx, policies.StoreOptions{Dir: v2, Keys: keys, Threshold: 1, State: open(t, pg.DSN())}); err != nil {
		t.Fatalf("version 2 again: %v", err)
	}
}
