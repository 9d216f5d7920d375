package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/medicus-cloud/trust/audit/storage/postgres"
	"github.com/medicus-cloud/trust/audit/storage/postgres/pgtest"
	"github.com/medicus-cloud/trust/audit/tlog"
	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/secret"
)

// BenchmarkLoadPostgres prints the load test's figures (requests/s, p50, p99) for real
// trustd processes whose audit log is one PostgreSQL: one replica, then two replicas driven at
// once (one trustctl loadtest each; requests/s is their sum, the latencies are the worse of the
// two). It prints no ratio, so make bench leaves it out: go test -run '^$' -bench LoadPostgres ./cmd/trustd.
func BenchmarkLoadPostgres(b *testing.B) {
	pg := pgtest.Start(b)
	dir := b.TempDir()
	bin := buildTrustd(b, dir)
	ctl := filepath.Join(dir, "trustctl")
	if out, err := exec.Command("go", "build", "-o", ctl, "../trustctl").CombinedOutput(); err != nil {
		b.Fatalf("go build trustctl: %v\n%s", err, out)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			b.Fatal(err)
		}
		return p
	}
	skey, _, err := postgres.GenerateKey(rand.Reader, tlog.DefaultOrigin)
	if err != nil {
		b.Fatal(err)
	}
	mk, nk := make([]byte, 32), make([]byte, 32)
	rand.Read(mk)
	rand.Read(nk)
	shared := fmt.Sprintf("nonce_key_files: [%s]\ntoken_key_dir: %s\nmaster_key_file: %s\naudit:\n  backend: postgres\n  dsn_file: %s\n  key_file: %s\n",
		write("nonce.key", []byte(hex.EncodeToString(nk))), filepath.Join(dir, "token-keys"),
		write("master.key", []byte(hex.EncodeToString(mk))), write("dsn", []byte(pg.DSN())), write("note.key", []byte(skey)))
	kr, err := local.Open(local.Options{Path: filepath.Join(dir, "a", "keyring"), MasterKey: secret.New(bytes.Clone(mk))})
	if err != nil {
		b.Fatal(err)
	}
	if err := kr.CreateKey(context.Background(), "hello/records"); err != nil {
		b.Fatal(err)
	}
	ring, err := os.ReadFile(filepath.Join(dir, "a", "keyring"))
	if err != nil {
		b.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "b"), 0o700)
	if err := os.WriteFile(filepath.Join(dir, "b", "keyring"), ring, 0o600); err != nil {
		b.Fatal(err)
	}
	tds := []*trustd{startTrustdWith(b, bin, filepath.Join(dir, "a"), shared), startTrustdWith(b, bin, filepath.Join(dir, "b"), shared)}
	load := func(addr string, n int) string {
		out, err := exec.Command(ctl, "loadtest", "--addr", addr, "--insecure", "--workloads", "16",
			"--requests", strconv.Itoa(n), "--duration", "5m").CombinedOutput()
		if err != nil {
			b.Fatalf("trustctl loadtest: %v\n%s", err, out)
		}
		return string(out)
	}
	for _, td := range tds {
		load(td.addr, 100) // warm up
	}
	reportLoad(b, "postgres-1-replica", load(tds[0].addr, 2000))
	outs := make([]string, len(tds))
	var wg sync.WaitGroup
	for i, td := range tds {
		wg.Go(func() { outs[i] = load(td.addr, 1500) })
	}
	wg.Wait()
	var rps, p50, p99 float64
	for _, out := range outs {
		t, l := reThroughput.FindStringSubmatch(out), reLatency.FindStringSubmatch(out)
		if t == nil || l == nil {
			b.Fatalf("unexpected loadtest output:\n%s", out)
		}
		r, _ := strconv.ParseFloat(t[1], 64)
		a, _ := strconv.ParseFloat(l[1], 64)
		c, _ := strconv.ParseFloat(l[2], 64)
		rps, p50, p99 = rps+r, max(p50, a), max(p99, c)
	}
	fmt.Printf("loadtest postgres-2-replicas: %.1f req/s p50 %.2f ms p99 %.2f ms\n", rps, p50, p99)
}
