package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)

func testRecord(i int) *Record {
	return &Record{
		Time:        t0.Add(time.Duration(i) * time.Second),
		RequestID:   fmt.Sprintf("req-%04d", i),
		Event:       EventGenerateDataKey,
		TEE:         "sev-snp",
		Platform:    map[string]string{"chip_id": "00aa", "fmspc": "00906ed50000"},
		Measurement: fmt.Sprintf("%096x", i%3),
		Verdict:     []string{VerdictAllow, VerdictDeny}[i%2],
		Reason:      "",
		Policy:      "radiology",
		Names:       []string{fmt.Sprintf("data_key:dek/radiology-%d", i%5)},
		Caller:      "10.0.0.7:5511",
	}
}

func openTest(t testing.TB, dir string) *Log {
	t.Helper()
	l, err := OpenLocal(context.Background(), LocalOptions{Dir: dir})
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
			idx, err := l.Append(context.Background(), testRecord(from+i))
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
			if _, err := l.Append(context.Background(), testRecord(0)); !errors.Is(err, ErrClosed) {
				t.Fatalf("Append after Close: %v, want ErrClosed", err)
			}
			l = openTest(t, dir)
			defer l.Close()
			if l.VerifierKey() != vkey {
				t.Fatal("verifier key changed on reopen")
			}
			idx, err := l.Append(context.Background(), testRecord(n))
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
	cp, err := Verify(context.Background(), new(bytes.Buffer), VerifyOptions{Source: Source{Log: dir, Key: vkey}})
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
			appendInOrder(t, l, records(0, tc.committed))
			cp := checkpointOf(t, dir)
			appendInOrder(t, l, records(tc.committed, tc.committed+tc.lost))
			l.Close()
			if err := os.WriteFile(filepath.Join(dir, publicDir, "checkpoint"), cp, 0o644); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, tmpDir, "w-123"), []byte("half a tile"), 0o600)

			l = openSeeded(t, dir, 1)
			defer l.Close()
			if l.st.size != uint64(tc.committed) {
				t.Fatalf("reopened at %d, want %d", l.st.size, tc.committed)
			}
			// Different records this time: nothing of the lost commit may survive.
			recs := records(1000, 1000+tc.lost+3)
			appendInOrder(t, l, recs)
			got, err := Verify(ctx, new(bytes.Buffer), VerifyOptions{Source: Source{Log: dir, Key: l.VerifierKey()}, Trusted: cp})
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
			appendInOrder(t, l, records(0, 20))
			l.Close()
			tc.edit(dir)
			if l, err := OpenLocal(context.Background(), LocalOptions{Dir: dir}); err == nil {
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

// TestUnwritable: when the disk refuses, Append reports ErrUnwritable and acknowledges nothing;
// once it accepts again the log goes on from its last checkpoint.
func TestUnwritable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	defer l.Close()
	fill(t, l, 0, 5)
	// Running as root defeats permission bits: put a file where the scratch directory was.
	tmp := filepath.Join(dir, tmpDir)
	os.RemoveAll(tmp)
	os.WriteFile(tmp, nil, 0o600)
	if _, err := l.Append(ctx, testRecord(5)); !errors.Is(err, ErrUnwritable) {
		t.Fatalf("Append on a broken disk = %v, want ErrUnwritable", err)
	}
	os.Remove(tmp)
	os.Mkdir(tmp, 0o700)
	idx, err := l.Append(ctx, testRecord(6))
	if err != nil || idx != 5 {
		t.Fatalf("Append after repair = %d, %v; want 5", idx, err)
	}
	if _, err := Verify(ctx, new(bytes.Buffer), VerifyOptions{Source: Source{Log: dir, Key: l.VerifierKey()}}); err != nil {
		t.Fatal(err)
	}
}

func TestAppendInvalid(t *testing.T) {
	l := openTest(t, t.TempDir())
	defer l.Close()
	for _, r := range []*Record{nil, {Event: "attest", Verdict: "maybe"}, {Verdict: VerdictAllow}, {Event: "attest", Verdict: VerdictAllow, RequestID: strings.Repeat("x", MaxRecordSize)}} {
		if _, err := l.Append(context.Background(), r); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("Append(%+v) = %v, want ErrInvalidRecord", r, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(ctx, testRecord(1)); err == nil {
		t.Error("Append with a cancelled context succeeded")
	}
}

func TestLongReason(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	defer l.Close()
	r := testRecord(0)
	r.Reason = strings.Repeat("é", MaxRecordSize)
	if _, err := l.Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Search(context.Background(), &out, SearchOptions{Source: Source{Log: dir, Key: l.VerifierKey()}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "é [truncated]") || out.Len() > MaxReason+1000 {
		t.Fatalf("reason not cut: %d bytes", out.Len())
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
	src := Source{Log: srv.URL, Key: l.VerifierKey()}
	for {
		if _, err := Verify(context.Background(), new(bytes.Buffer), VerifyOptions{Source: src}); err != nil {
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
	if _, err := OpenLocal(context.Background(), LocalOptions{Dir: dir}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open = %v, want ErrLocked", err)
	}
	l.Close()
	l.Close()
	openTest(t, dir).Close()
}
