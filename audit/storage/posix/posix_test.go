package posix

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/auditor"
	"github.com/medicus-cloud/trust/audit/audittest"
	"github.com/medicus-cloud/trust/audit/tlog"
)

// openSeeded opens a log whose note key comes from a fixed seed.
func openSeeded(t testing.TB, dir string, seed uint64) *Log {
	t.Helper()
	var s [32]byte
	s[0] = byte(seed)
	l, err := Open(context.Background(), Options{Dir: dir, Rand: rand.NewChaCha8(s)})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// appendInOrder queues records in order, so that the log's content is deterministic while
// the writer still batches them.
func appendInOrder(t testing.TB, l *Log, recs []*audit.Record) {
	t.Helper()
	es := make([][]byte, len(recs))
	for i, r := range recs {
		b, err := audit.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		es[i] = b
	}
	if _, err := l.gc.AppendOrdered(context.Background(), es); err != nil {
		t.Fatal(err)
	}
}

func checkpointOf(t testing.TB, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, publicDir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openTest(t testing.TB, dir string) *Log {
	t.Helper()
	l, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fill appends n records from many goroutines and checks that the indexes are a permutation.
func fill(t testing.TB, l *Log, from, n int) {
	t.Helper()
	if err := appendMany(l, from, n); err != nil {
		t.Fatal(err)
	}
}

func appendMany(l *Log, from, n int) error {
	var wg sync.WaitGroup
	seen := make([]bool, from+n)
	var mu sync.Mutex
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			idx, err := l.Append(context.Background(), audittest.Record(from+i))
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if idx >= uint64(len(seen)) || seen[idx] {
				errs <- fmt.Errorf("index %d twice or out of range", idx)
			}
			seen[idx] = true
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func TestLocalAppendReopen(t *testing.T) {
	for _, n := range []int{0, 1, 255, 256, 257, 600} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := t.TempDir()
			l := openTest(t, dir)
			fill(t, l, 0, n)
			vkey := l.VerifierKey()
			l.Close()
			if _, err := l.Append(context.Background(), audittest.Record(0)); !errors.Is(err, tlog.ErrClosed) {
				t.Fatalf("Append after Close: %v, want tlog.ErrClosed", err)
			}
			l = openTest(t, dir)
			defer l.Close()
			if l.VerifierKey() != vkey {
				t.Fatal("verifier key changed on reopen")
			}
			idx, err := l.Append(context.Background(), audittest.Record(n))
			if err != nil || idx != uint64(n) {
				t.Fatalf("Append after reopen = %d, %v; want %d", idx, err, n)
			}
			fi, err := os.Stat(filepath.Join(dir, keyFile))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("note key mode: %v %v", fi, err)
			}
		})
	}
}

func TestConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	fill(t, l, 0, 700)
	vkey := l.VerifierKey()
	l.Close()
	cp, err := auditor.Verify(context.Background(), auditor.VerifyOptions{Source: auditor.Source{Log: dir, Key: vkey}})
	if err != nil || cp.Size != 700 {
		t.Fatalf("Verify = %v, %v", cp, err)
	}
}

// TestCrashRecovery puts back an older checkpoint, as if the process had died after the
// entries and tiles of a commit were written but before its checkpoint: the log must reopen at
// the old checkpoint, forget the rest, and grow into a valid log.
func TestCrashRecovery(t *testing.T) {
	for _, tc := range []struct{ committed, lost int }{{0, 5}, {10, 5}, {10, 400}, {256, 1}, {300, 300}} {
		t.Run(fmt.Sprintf("%d+%d", tc.committed, tc.lost), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			l := openSeeded(t, dir, 1)
			appendInOrder(t, l, audittest.Records(0, tc.committed))
			if err := l.Publish(ctx); err != nil {
				t.Fatal(err)
			}
			cp := checkpointOf(t, dir)
			appendInOrder(t, l, audittest.Records(tc.committed, tc.committed+tc.lost))
			l.Close()
			if err := os.WriteFile(filepath.Join(dir, publicDir, "checkpoint"), cp, 0o644); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, tmpDir, "w-123"), []byte("half a tile"), 0o600)

			l = openSeeded(t, dir, 1)
			defer l.Close()
			if l.st.Size() != uint64(tc.committed) {
				t.Fatalf("reopened at %d, want %d", l.st.Size(), tc.committed)
			}
			// Different records this time: nothing of the lost commit may survive.
			recs := audittest.Records(1000, 1000+tc.lost+3)
			appendInOrder(t, l, recs)
			if err := l.Publish(ctx); err != nil {
				t.Fatal(err)
			}
			got, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: auditor.Source{Log: dir, Key: l.VerifierKey()}, Trusted: cp})
			if err != nil {
				t.Fatal(err)
			}
			if got.Size != uint64(tc.committed+len(recs)) {
				t.Fatalf("size %d", got.Size)
			}
			if ents, _ := os.ReadDir(filepath.Join(dir, tmpDir)); len(ents) != 0 {
				t.Fatalf("temporary files left: %v", ents)
			}
		})
	}
}

func TestOpenCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(dir string)
	}{
		{"tile byte", func(dir string) { flipFile(dir, "log/tile/0/000.p/20", 3) }},
		{"bundle byte", func(dir string) { flipFile(dir, "log/tile/entries/000.p/20", 30) }},
		{"checkpoint", func(dir string) { flipFile(dir, "log/checkpoint", 30) }},
		{"key gone", func(dir string) { os.Remove(filepath.Join(dir, keyFile)) }},
		{"key readable", func(dir string) { os.Chmod(filepath.Join(dir, keyFile), 0o644) }},
		{"checkpoint gone", func(dir string) { os.Remove(filepath.Join(dir, publicDir, "checkpoint")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openSeeded(t, dir, 1)
			appendInOrder(t, l, audittest.Records(0, 20))
			l.Close()
			tc.edit(dir)
			if l, err := Open(context.Background(), Options{Dir: dir}); err == nil {
				l.Close()
				t.Fatal("opened a corrupt log")
			} else {
				t.Log(err)
			}
		})
	}
}

func flipFile(dir, p string, off int) {
	fp := filepath.Join(dir, filepath.FromSlash(p))
	b, err := os.ReadFile(fp)
	if err != nil {
		panic(err)
	}
	b[off] ^= 1
	os.WriteFile(fp, b, 0o644)
}

// TestUnwritable: when the disk refuses the tiles, the batch already in the journal stays
// acknowledged, publication reports tlog.ErrUnwritable and Append acknowledges nothing more; once
// the disk accepts again the next publication succeeds and the log goes on without a reopen.
func TestUnwritable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := Open(ctx, Options{Dir: dir, PublishInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fill(t, l, 0, 5)
	if err := l.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	// Running as root defeats permission bits: put a file where the scratch directory was.
	tmp := filepath.Join(dir, tmpDir)
	os.RemoveAll(tmp)
	os.WriteFile(tmp, nil, 0o600)
	if _, err := l.Append(ctx, audittest.Record(5)); err != nil {
		t.Fatalf("Append before publication = %v, want durable", err)
	}
	if err := l.Publish(ctx); !errors.Is(err, tlog.ErrUnwritable) {
		t.Fatalf("Publish on a broken disk = %v, want tlog.ErrUnwritable", err)
	}
	if _, err := l.Append(ctx, audittest.Record(6)); !errors.Is(err, tlog.ErrUnwritable) {
		t.Fatalf("Append on a broken disk = %v, want tlog.ErrUnwritable", err)
	}
	os.Remove(tmp)
	os.Mkdir(tmp, 0o700)
	// The publisher tries a failed publication again within retryInterval, however long
	// its publish interval.
	var idx uint64
	for range 100 {
		if idx, err = l.Append(ctx, audittest.Record(7)); err == nil {
			break
		}
		time.Sleep(retryInterval / 2)
	}
	if err != nil || idx != 6 {
		t.Fatalf("Append after repair = %d, %v; want 6", idx, err)
	}
	if err := l.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	cp, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: auditor.Source{Log: dir, Key: l.VerifierKey()}})
	if err != nil || cp.Size != 7 {
		t.Fatalf("Verify = %v, %v; want 7 records", cp, err)
	}
}

func TestAppendInvalid(t *testing.T) {
	l := openTest(t, t.TempDir())
	defer l.Close()
	for _, r := range []*audit.Record{nil, {Event: "attest", Verdict: "maybe"}, {Verdict: audit.VerdictAllow}, {Event: "attest", Verdict: audit.VerdictAllow, RequestID: strings.Repeat("x", audit.MaxRecordSize)}} {
		if _, err := l.Append(context.Background(), r); !errors.Is(err, audit.ErrInvalidRecord) {
			t.Errorf("Append(%+v) = %v, want audit.ErrInvalidRecord", r, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(ctx, audittest.Record(1)); err == nil {
		t.Error("Append with a cancelled context succeeded")
	}
}

func TestLongReason(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	defer l.Close()
	r := audittest.Record(0)
	r.Reason = strings.Repeat("é", audit.MaxRecordSize)
	if _, err := l.Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if err := l.Publish(context.Background()); err != nil {
		t.Fatal(err)
	}
	ms, err := auditor.Search(context.Background(), auditor.SearchOptions{Source: auditor.Source{Log: dir, Key: l.VerifierKey()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || !strings.HasSuffix(ms[0].Record.Reason, "é [truncated]") || len(ms[0].Record.Reason) > audit.MaxReason {
		t.Fatalf("reason not cut: %+v", ms)
	}
}

// TestServeWhileAppending: readers of the HTTP handler see a consistent log at every checkpoint
// while appends go on, including when partial tiles are replaced by full ones.
func TestServeWhileAppending(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	defer l.Close()
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	done := make(chan error, 1)
	go func() { done <- appendMany(l, 0, 600) }()
	src := auditor.Source{Log: srv.URL, Key: l.VerifierKey()}
	for {
		if _, err := auditor.Verify(context.Background(), auditor.VerifyOptions{Source: src}); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	if _, err := Open(context.Background(), Options{Dir: dir}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open = %v, want ErrLocked", err)
	}
	l.Close()
	l.Close()
	openTest(t, dir).Close()
}
