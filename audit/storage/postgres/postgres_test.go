package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/auditor"
	"github.com/medicus-cloud/trust/audit/storage/postgres/pgtest"
	"github.com/medicus-cloud/trust/audit/tlog"
	"github.com/medicus-cloud/trust/service"
)

// trustd takes a *Log where it takes the posix log.
var _ service.AuditLog = (*Log)(nil)

var t0 = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

func record(who string, i int) *audit.Record {
	return &audit.Record{
		Time:      t0.Add(time.Duration(i) * time.Millisecond),
		RequestID: fmt.Sprintf("%s-%05d", who, i),
		Event:     audit.EventGetSecret,
		TEE:       "sev-snp",
		Verdict:   audit.VerdictAllow,
		Names:     []string{"secret:radiology"},
	}
}

func newKey(t testing.TB) (string, string) {
	t.Helper()
	skey, vkey, err := GenerateKey(rand.Reader, tlog.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	return skey, vkey
}

func openLog(t testing.TB, dsn, skey string) *Log {
	t.Helper()
	l, err := Open(context.Background(), Options{DSN: dsn, Key: skey, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func serve(t testing.TB, l *Log) string {
	t.Helper()
	srv := httptest.NewServer(http.StripPrefix("/audit", l.Handler()))
	t.Cleanup(srv.Close)
	return srv.URL + "/audit/"
}

// records returns every record of a verified log by index, through auditor.Search.
func records(t testing.TB, src auditor.Source) map[uint64]string {
	t.Helper()
	ms, err := auditor.Search(context.Background(), auditor.SearchOptions{Source: src})
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	got := map[uint64]string{}
	for _, m := range ms {
		got[m.Index] = m.Record.RequestID
	}
	return got
}

// acks collects acknowledged appends: index to request ID, failing on an index given twice.
type acks struct {
	mu sync.Mutex
	m  map[uint64]string
}

func (a *acks) add(t testing.TB, i uint64, id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[uint64]string{}
	}
	if prev, dup := a.m[i]; dup {
		t.Errorf("index %d acknowledged for %s and %s", i, prev, id)
	}
	a.m[i] = id
}

func (a *acks) check(t testing.TB, got map[uint64]string) {
	t.Helper()
	seen := map[string]uint64{}
	for i, id := range got {
		if j, dup := seen[id]; dup {
			t.Errorf("record %s at indices %d and %d", id, i, j)
		}
		seen[id] = i
	}
	for i, id := range a.m {
		if got[i] != id {
			t.Errorf("acknowledged index %d holds %q, want %q", i, got[i], id)
		}
	}
}

// Two replicas append concurrently to one database; the log served by either (and exported)
// verifies, grew consistently from a checkpoint taken midway, and holds every acknowledged
// record exactly once at its index.
func TestReplicasAppendConcurrently(t *testing.T) {
	c := pgtest.Start(t)
	skey, vkey := newKey(t)
	a, b := openLog(t, c.DSN(), skey), openLog(t, c.DSN(), skey)
	if a.VerifierKey() != vkey || a.Origin() != tlog.DefaultOrigin {
		t.Fatalf("verifier key %q origin %q", a.VerifierKey(), a.Origin())
	}
	urlA, urlB := serve(t, a), serve(t, b)
	ctx := context.Background()

	var got acks
	appendAll := func(l *Log, who string, n, workers int) {
		var wg sync.WaitGroup
		next := atomic.Int64{}
		for range workers {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= n {
						return
					}
					r := record(who, i)
					idx, err := l.Append(ctx, r)
					if err != nil {
						t.Errorf("%s: append %d: %v", who, i, err)
						return
					}
					got.add(t, idx, r.RequestID)
				}
			})
		}
		wg.Wait()
	}
	var wg sync.WaitGroup
	wg.Go(func() { appendAll(a, "a", 150, 8) })
	wg.Go(func() { appendAll(b, "b", 150, 8) })
	wg.Wait()
	mid := fetch(t, urlB+"checkpoint")
	state := filepath.Join(t.TempDir(), "witness")
	if _, err := auditor.Witness(ctx, auditor.WitnessOptions{Source: auditor.Source{Log: urlA, Key: vkey}, State: state}); err != nil {
		t.Fatalf("witness: %v", err)
	}
	// Auditors read while the replicas append: a checkpoint and the tiles fetched after it
	// (which may have grown meanwhile) always verify.
	done := make(chan struct{})
	var verified atomic.Int64
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: auditor.Source{Log: urlB, Key: vkey}}); err != nil {
				t.Errorf("verify during appends: %v", err)
				return
			}
			verified.Add(1)
		}
	})
	wg.Go(func() { appendAll(a, "a2", 200, 16) })
	wg.Go(func() { appendAll(b, "b2", 200, 16) })
	wg.Wait()
	close(done)
	readers.Wait()
	t.Logf("%d verifications during appends", verified.Load())
	if t.Failed() {
		t.FailNow()
	}
	for _, u := range []string{urlA, urlB} {
		cp, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: auditor.Source{Log: u, Key: vkey}, Trusted: mid})
		if err != nil {
			t.Fatalf("verify %s: %v", u, err)
		}
		if cp.Size != 700 {
			t.Fatalf("size %d, want 700", cp.Size)
		}
	}
	got.check(t, records(t, auditor.Source{Log: urlA, Key: vkey}))
	if w, err := auditor.Witness(ctx, auditor.WitnessOptions{Source: auditor.Source{Log: urlB, Key: vkey}, State: state, Full: true}); err != nil || w.Checkpoint.Size != 700 {
		t.Fatalf("witness: %v", err)
	}
	if _, err := auditor.Prove(ctx, auditor.ProveOptions{Source: auditor.Source{Log: urlB, Key: vkey}, Index: 517}); err != nil {
		t.Fatalf("prove: %v", err)
	}
	if _, err := auditor.Consistency(ctx, auditor.ConsistencyOptions{Source: auditor.Source{Log: urlA, Key: vkey}, Old: mid}); err != nil {
		t.Fatalf("consistency: %v", err)
	}
	dir := t.TempDir()
	if err := a.Export(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: auditor.Source{Log: dir, Key: vkey}, Trusted: mid}); err != nil {
		t.Fatalf("verify export: %v", err)
	}
	// A third replica started later picks the tree up from the database.
	c3 := openLog(t, c.DSN(), skey)
	if i, err := c3.Append(ctx, record("c", 0)); err != nil || i != 700 {
		t.Fatalf("third replica: index %d, %v", i, err)
	}
	// A replica with another key must not write to this log.
	other, _ := newKey(t)
	if _, err := Open(ctx, Options{DSN: c.DSN(), Key: other}); !errors.Is(err, tlog.ErrCorrupt) {
		t.Fatalf("open with another key: %v, want ErrCorrupt", err)
	}
}

func fetch(t testing.TB, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", u, resp.Status, err)
	}
	return b
}

// PostgreSQL crashes and comes back while appends are running: appends fail with
// ErrUnwritable meanwhile, succeed again afterwards, and every acknowledged record is there.
func TestPostgresRestartDuringAppends(t *testing.T) {
	c := pgtest.Start(t)
	skey, vkey := newKey(t)
	l := openLog(t, c.DSN(), skey)
	ctx := context.Background()

	var (
		got       acks
		failures  atomic.Int64
		afterBack atomic.Int64
		back      atomic.Bool
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := record(fmt.Sprintf("w%d", w), i)
				idx, err := l.Append(ctx, r)
				if err != nil {
					if !errors.Is(err, tlog.ErrUnwritable) {
						t.Errorf("append: %v, want ErrUnwritable", err)
					}
					failures.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				got.add(t, idx, r.RequestID)
				if back.Load() {
					afterBack.Add(1)
				}
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	c.Stop("immediate") // a crash: only what was committed survives
	time.Sleep(500 * time.Millisecond)
	c.Start()
	back.Store(true)
	deadline := time.Now().Add(30 * time.Second)
	for afterBack.Load() < 200 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failures.Load() == 0 {
		t.Error("no append failed while the server was down")
	}
	if afterBack.Load() < 200 {
		t.Fatalf("only %d appends succeeded after the restart", afterBack.Load())
	}
	url := serve(t, l)
	if _, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: auditor.Source{Log: url, Key: vkey}}); err != nil {
		t.Fatal(err)
	}
	recs := records(t, auditor.Source{Log: url, Key: vkey})
	got.check(t, recs)
	t.Logf("%d acknowledged, %d failed while down, %d in the log", len(got.m), failures.Load(), len(recs))
}

// Altering, removing or reordering a stored record is caught by Verify, which names the entry.
func TestTamperedRowNamed(t *testing.T) {
	c := pgtest.Start(t)
	skey, vkey := newKey(t)
	l := openLog(t, c.DSN(), skey)
	ctx := context.Background()
	for i := range 300 {
		if _, err := l.Append(ctx, record("t", i)); err != nil {
			t.Fatal(err)
		}
	}
	src := auditor.Source{Log: serve(t, l), Key: vkey}
	if _, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: src}); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, c.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, tc := range []struct {
		name  string
		sql   string
		undo  string
		entry uint64
	}{
		{"altered", `UPDATE audit_entries SET data = convert_to(replace(convert_from(data, 'UTF8'), 'allow', 'deny '), 'UTF8') WHERE idx = 17`,
			`UPDATE audit_entries SET data = convert_to(replace(convert_from(data, 'UTF8'), 'deny ', 'allow'), 'UTF8') WHERE idx = 17`, 17},
		{"altered in the partial bundle", `UPDATE audit_entries SET data = convert_to(replace(convert_from(data, 'UTF8'), 't-00290', 't-00291'), 'UTF8') WHERE idx = 290`,
			`UPDATE audit_entries SET data = convert_to(replace(convert_from(data, 'UTF8'), 't-00291', 't-00290'), 'UTF8') WHERE idx = 290`, 290},
		{"removed", `DELETE FROM audit_entries WHERE idx = 40`, "", 40},
	} {
		if _, err := pool.Exec(ctx, tc.sql); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: src})
		var ee *tlog.EntryError
		if !errors.As(err, &ee) || ee.Index != tc.entry {
			t.Fatalf("%s: verify: %v, want an error naming entry %d", tc.name, err, tc.entry)
		}
		if tc.undo != "" {
			if _, err := pool.Exec(ctx, tc.undo); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A replica that has to reload the tree refuses to append to a log that no longer matches
	// its checkpoint.
	if _, err := Open(ctx, Options{DSN: c.DSN(), Key: skey}); err != nil {
		// Entry 40 is in a full bundle, which Open does not read: it opens.
		t.Fatalf("open: %v", err)
	}
	if _, err := pool.Exec(ctx, `UPDATE audit_tiles SET data = overlay(data placing '\x00'::bytea from 1) WHERE level = 1 AND idx = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, Options{DSN: c.DSN(), Key: skey}); !errors.Is(err, tlog.ErrCorrupt) {
		t.Fatalf("open over a tampered tile: %v, want ErrCorrupt", err)
	}
}

// A replica killed (SIGKILL) in the middle of its append transaction leaves nothing: the log
// stays at its last checkpoint, verifies, and the next append gets the next index.
func TestKilledReplicaLeavesNothing(t *testing.T) {
	if dsn, skey := os.Getenv("PGLOG_KILL_DSN"), os.Getenv("PGLOG_KILL_KEY"); dsn != "" {
		// The replica to kill, run as a child of the test below.
		l, err := Open(context.Background(), Options{DSN: dsn, Key: skey})
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		l.beforeCommit = func(context.Context, pgx.Tx) error {
			return syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		for i := range 5 {
			l.Append(context.Background(), record("killed", i))
		}
		os.Exit(3)
	}
	c := pgtest.Start(t)
	skey, vkey := newKey(t)
	l := openLog(t, c.DSN(), skey)
	ctx := context.Background()
	for i := range 10 {
		if _, err := l.Append(ctx, record("before", i)); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledReplicaLeavesNothing$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PGLOG_KILL_DSN="+c.DSN(), "PGLOG_KILL_KEY="+skey)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v\n%s", err, out)
	}
	i, err := l.Append(ctx, record("after", 0))
	if err != nil || i != 10 {
		t.Fatalf("append after the kill: index %d, %v; want 10", i, err)
	}
	src := auditor.Source{Log: serve(t, l), Key: vkey}
	recs := records(t, src)
	if len(recs) != 11 || recs[10] != "after-00000" {
		t.Fatalf("log holds %d records, last %q", len(recs), recs[10])
	}
	dir := filepath.Join(t.TempDir(), "x")
	if err := l.Export(ctx, dir); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejects(t *testing.T) {
	skey, _ := newKey(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no DSN", Options{Key: skey}, "DSN is empty"},
		{"no key", Options{DSN: "postgres://localhost/x"}, "not a note signing key"},
		{"bad DSN", Options{DSN: "postgres://u:s3cret@[::1/x", Key: skey}, "does not parse"},
		{"unsafe commit", Options{DSN: "postgres://localhost/x?synchronous_commit=off", Key: skey}, "synchronous_commit=off"},
		// Whoever sits between trustd and a remote database could acknowledge appends that
		// never reach it, unless trustd verifies the server's certificate.
		{"remote, default sslmode", Options{DSN: "postgres://u:s3cret@db.example.invalid/x?connect_timeout=1", Key: skey}, "sslmode"},
		{"remote, sslmode=prefer", Options{DSN: "postgres://u:s3cret@db.example.invalid/x?sslmode=prefer&connect_timeout=1", Key: skey}, "sslmode"},
		{"remote, sslmode=require", Options{DSN: "host=db.example.invalid user=u password=s3cret sslmode=require connect_timeout=1", Key: skey}, "sslmode"},
		{"remote, sslmode=disable", Options{DSN: "postgres://u:s3cret@192.0.2.7/x?sslmode=disable&connect_timeout=1", Key: skey}, "sslmode"},
		{"remote fallback host", Options{DSN: "postgres://u:s3cret@127.0.0.1:1,db.example.invalid/x?sslmode=disable&connect_timeout=1", Key: skey}, "sslmode"},
	} {
		_, err := Open(ctx, tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}

func TestAppendErrors(t *testing.T) {
	c := pgtest.Start(t)
	skey, _ := newKey(t)
	l := openLog(t, c.DSN(), skey)
	ctx := context.Background()
	if _, err := l.Append(ctx, &audit.Record{Event: "x", Verdict: "maybe", Time: t0}); !errors.Is(err, audit.ErrInvalidRecord) {
		t.Fatalf("invalid record: %v", err)
	}
	// A zero time is stamped, a long reason cut, as the posix log does.
	r := record("e", 0)
	r.Time = time.Time{}
	r.Reason = strings.Repeat("x", 2*audit.MaxReason)
	if i, err := l.Append(ctx, r); err != nil || i != 0 {
		t.Fatalf("append: %d, %v", i, err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Append(cancelled, record("e", 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	l.Close()
	if _, err := l.Append(ctx, record("e", 2)); !errors.Is(err, tlog.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	url := serve(t, openLog(t, c.DSN(), skey))
	for p, want := range map[string]int{"checkpoint": 200, "tile/entries/000.p/1": 200, "tile/0/000": 404, "tile/0/000.p/2": 404, "note.key": 404, "../checkpoint": 404} {
		resp, err := http.Get(url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %s, want %d", p, resp.Status, want)
		}
	}
	// The server stopped: the handler answers 503, Open fails as unwritable, without a panic
	// or a hang.
	c.Stop("fast")
	resp, err := http.Get(url + "checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("checkpoint without a server: %s, want 503", resp.Status)
	}
	if _, err := Open(ctx, Options{DSN: c.DSN(), Key: skey}); !errors.Is(err, tlog.ErrUnwritable) {
		t.Fatalf("open without a server: %v", err)
	}
}

// A database rolled back under a running replica (restored from an older backup) would lose
// acknowledged records: the replica refuses to append to it.
func TestRollbackRefused(t *testing.T) {
	c := pgtest.Start(t)
	skey, vkey := newKey(t)
	a := openLog(t, c.DSN(), skey)
	url := serve(t, a)
	ctx := context.Background()
	for i := range 5 {
		if _, err := a.Append(ctx, record("r", i)); err != nil {
			t.Fatal(err)
		}
	}
	old := fetch(t, url+"checkpoint")
	for i := 5; i < 10; i++ {
		if _, err := a.Append(ctx, record("r", i)); err != nil {
			t.Fatal(err)
		}
	}
	pool, err := pgxpool.New(ctx, c.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `DELETE FROM audit_entries WHERE idx >= 5`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE audit_head SET size = 5, checkpoint = $1`, old); err != nil {
		t.Fatal(err)
	}
	// The rolled-back log is itself valid: only a party that remembers can tell.
	if _, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: auditor.Source{Log: url, Key: vkey}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Append(ctx, record("r", 10)); !errors.Is(err, tlog.ErrCorrupt) {
		t.Fatalf("append after a rollback: %v, want ErrCorrupt", err)
	}
	// Still refused: the replica keeps what it saw.
	if _, err := a.Append(ctx, record("r", 11)); !errors.Is(err, tlog.ErrCorrupt) {
		t.Fatalf("second append after a rollback: %v, want ErrCorrupt", err)
	}
}

// A replica far behind the others reloads the tree from the tiles and checks that it extends
// what it saw; a same-size checkpoint with another root (a fork) is refused.
func TestFarBehindReplicaAndFork(t *testing.T) {
	c := pgtest.Start(t)
	skey, vkey := newKey(t)
	a, b := openLog(t, c.DSN(), skey), openLog(t, c.DSN(), skey)
	ctx := context.Background()
	if _, err := a.Append(ctx, record("a", 0)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := range (maxCatchUp + 200) / 32 {
				if _, err := b.Append(ctx, record(fmt.Sprintf("b%d", w), i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	i, err := a.Append(ctx, record("a", 1))
	if err != nil || i <= maxCatchUp {
		t.Fatalf("far-behind append: %d, %v", i, err)
	}
	if _, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: auditor.Source{Log: serve(t, a), Key: vkey}}); err != nil {
		t.Fatal(err)
	}
	// Another tree of the same size, signed with the key (which a database administrator
	// does not have, but a compromised replica does).
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	fork, err := tlog.SignCheckpoint(tlog.Checkpoint{Origin: a.Origin(), Size: i + 1, Root: bytes.Repeat([]byte{7}, 32)}, signer)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, c.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `UPDATE audit_head SET checkpoint = $1`, fork); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Append(ctx, record("a", 2)); !errors.Is(err, tlog.ErrCorrupt) {
		t.Fatalf("append over a fork: %v, want ErrCorrupt", err)
	}
}

// trustd's role needs no more than the README grants once the tables exist.
func TestLeastPrivilege(t *testing.T) {
	c := pgtest.Start(t)
	skey, vkey := newKey(t)
	ctx := context.Background()
	owner := openLog(t, c.DSN(), skey) // creates the tables as the superuser
	if _, err := owner.Append(ctx, record("owner", 0)); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, c.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, q := range []string{
		`CREATE ROLE trustd LOGIN`,
		`REVOKE CREATE ON SCHEMA public FROM PUBLIC`,
		`GRANT SELECT, INSERT, UPDATE ON audit_head, audit_tiles TO trustd`,
		`GRANT SELECT, INSERT ON audit_entries TO trustd`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	dsn := strings.Replace(c.DSN(), "postgres@", "trustd@", 1)
	l := openLog(t, dsn, skey)
	for i := range 300 {
		if _, err := l.Append(ctx, record("trustd", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := owner.Append(ctx, record("owner", 1)); err != nil {
		t.Fatal(err)
	}
	if cp, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: auditor.Source{Log: serve(t, l), Key: vkey}}); err != nil || cp.Size != 302 {
		t.Fatalf("verify: %v", err)
	}
	// What the role cannot do.
	rp, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	if _, err := rp.Exec(ctx, `DELETE FROM audit_entries WHERE idx = 3`); err == nil {
		t.Fatal("trustd's role deleted a record")
	}
}
