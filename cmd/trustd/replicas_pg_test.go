package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/audit/auditor"
	"github.com/medicus-cloud/trust/audit/storage/postgres"
	"github.com/medicus-cloud/trust/audit/storage/postgres/pgtest"
	"github.com/medicus-cloud/trust/audit/tlog"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/secret"
)

// TestReplicasOnPostgres runs two trustd replicas that share one PostgreSQL audit log, nonce
// keys, token keys and a keyring, streams releases through both, kills one replica and then
// restarts PostgreSQL in the middle of the stream. Afterwards every release a client received
// has its record, the log verifies through the survivor's read endpoint, and the survivor serves
// again once PostgreSQL is back.
func TestReplicasOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real trustd processes and a PostgreSQL server")
	}
	pg := pgtest.Start(t)
	dir := t.TempDir()
	bin := buildTrustd(t, dir)
	writeSecret := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	skey, vkey, err := postgres.GenerateKey(rand.Reader, tlog.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	mk := make([]byte, 32)
	rand.Read(mk)
	nk := make([]byte, 32)
	rand.Read(nk)
	shared := fmt.Sprintf(`nonce_key_files: [%s]
token_key_dir: %s
master_key_file: %s
audit:
  backend: postgres
  dsn_file: %s
  key_file: %s
http_listen: 127.0.0.1:0
`, writeSecret("nonce.key", []byte(hex.EncodeToString(nk))), filepath.Join(dir, "token-keys"),
		writeSecret("master.key", []byte(hex.EncodeToString(mk))), writeSecret("dsn", []byte(pg.DSN())),
		writeSecret("note.key", []byte(skey)))
	// One keyring, copied to both replicas' data directories (a deployment uses Vault instead).
	kr, err := local.Open(local.Options{Path: filepath.Join(dir, "a", "keyring"), MasterKey: secret.New(bytes.Clone(mk))})
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.CreateKey(context.Background(), "hello/records"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "a", "keyring")); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(filepath.Join(dir, "b", "keyring"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	a := startTrustdWith(t, bin, filepath.Join(dir, "a"), shared)
	b := startTrustdWith(t, bin, filepath.Join(dir, "b"), shared)
	bHTTP := b.httpAddr(t)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var (
		mu       sync.Mutex
		released []string
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	stream := func(name string, rpc pb.TrustClient, w int) {
		defer wg.Done()
		var (
			tok []byte
			k   *enclave.Key
		)
		for i := 0; !stop.Load(); i++ {
			if tok == nil {
				t2, k2, err := attestRaw(ctx, rpc)
				if err != nil {
					time.Sleep(20 * time.Millisecond) // replica dead or log unavailable: nothing issued
					continue
				}
				tok, k = t2, k2
			}
			rid := fmt.Sprintf("pg-%s-%d-%d", name, w, i)
			received, err := releaseDataKey(ctx, rpc, tok, k, rid)
			if err != nil {
				t.Error(err)
				return
			}
			if !received {
				time.Sleep(10 * time.Millisecond) // replica dead or log unavailable: nothing released
				continue
			}
			mu.Lock()
			released = append(released, rid)
			mu.Unlock()
		}
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(released) }
	waitFor := func(n int) {
		for count() < n && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	ra, rb := client(t, a.addr), client(t, b.addr)
	for w := range 3 {
		wg.Add(2)
		go stream("a", ra, w)
		go stream("b", rb, w)
	}
	waitFor(100)
	a.cmd.Process.Kill() // a replica dies mid-stream
	a.cmd.Wait()
	before := count()
	waitFor(before + 50) // the survivor keeps serving
	pg.Stop("fast")      // PostgreSQL goes away mid-stream: appends fail, nothing is released
	time.Sleep(300 * time.Millisecond)
	during := count()
	time.Sleep(300 * time.Millisecond)
	if got := count(); got > during+6 {
		t.Errorf("%d releases while PostgreSQL was down", got-during)
	}
	pg.Start()
	waitFor(count() + 50) // and serves again once it is back
	stop.Store(true)
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("stream stalled: %d releases", count())
	}

	// The auditor's view, through the survivor's read endpoint.
	src := auditor.Source{Log: "http://" + bHTTP + "/audit/", Key: vkey}
	if _, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: src}); err != nil {
		t.Fatalf("log: %v", err)
	}
	logged := releaseRecords(ctx, t, src)
	for _, rid := range released {
		if logged[rid] != 1 {
			t.Errorf("release %s reached its client but is in the log %d times", rid, logged[rid])
		}
	}
	t.Logf("%d releases received across the kill and the PostgreSQL restart; %d release records", len(released), len(logged))
}
