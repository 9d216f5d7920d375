package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
		Names:       []string{fmt.Sprintf("dek/radiology-%d", i%5)},
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
	for err := range errs {
		t.Fatal(err)
	}
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
