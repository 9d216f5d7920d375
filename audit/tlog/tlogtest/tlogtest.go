// Package tlogtest is the conformance suite of audit log storage drivers: what every
// implementation of tlog.Log must do, run against a real store. audit/storage/posix and
// audit/storage/postgres both pass it; a new driver calls Run from its tests.
package tlogtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/auditor"
	"github.com/medicus-cloud/trust/audit/tlog"
)

// Driver is one empty log of the driver under test.
type Driver struct {
	// Open opens the log; after Close it reopens the same log (what a restart does).
	Open func(t *testing.T) tlog.Log
	// Break makes the store refuse writes from now on, as a full disk or a database that went
	// away would; Repair undoes it. Both are called with the log open.
	Break, Repair func(t *testing.T)
}

// Run runs the suite. newDriver is called once per test, for a new empty log.
func Run(t *testing.T, newDriver func(t *testing.T) Driver) {
	for _, tc := range []struct {
		name string
		f    func(*testing.T, Driver)
	}{
		{"AppendReopen", testAppendReopen},
		{"ConcurrentAppends", testConcurrentAppends},
		{"Checkpoint", testCheckpoint},
		{"Proofs", testProofs},
		{"Unwritable", testUnwritable},
		{"InvalidRecord", testInvalidRecord},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, newDriver(t)) })
	}
}

var t0 = time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)

// record is the record of request id.
func record(id string, i int) *audit.Record {
	return &audit.Record{
		Time:      t0.Add(time.Duration(i) * time.Millisecond),
		RequestID: id,
		Event:     audit.EventGetSecret,
		TEE:       "sev-snp",
		Verdict:   []string{audit.VerdictAllow, audit.VerdictDeny}[i%2],
		Names:     []string{fmt.Sprintf("secret:db-%d", i%7)},
	}
}

// serve mounts l's handler as trustd does and returns the source auditors read it from.
func serve(t *testing.T, l tlog.Log) auditor.Source {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/audit/", http.StripPrefix("/audit/", l.Handler()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return auditor.Source{Log: srv.URL + "/audit/", Key: l.VerifierKey()}
}

// logged verifies the log src serves and returns its request IDs by index.
func logged(t *testing.T, src auditor.Source) []string {
	t.Helper()
	ms, err := auditor.Search(context.Background(), auditor.SearchOptions{Source: src})
	if err != nil {
		t.Fatalf("the log does not verify: %v", err)
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		if m.Index != uint64(i) {
			t.Fatalf("record %d has index %d", i, m.Index)
		}
		ids[i] = m.Record.RequestID
	}
	return ids
}

func appendN(t *testing.T, l tlog.Log, prefix string, from, n int) []string {
	t.Helper()
	var ids []string
	for i := from; i < from+n; i++ {
		id := fmt.Sprintf("%s-%04d", prefix, i)
		idx, err := l.Append(context.Background(), record(id, i))
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if idx != uint64(i) {
			t.Fatalf("append %d got index %d", i, idx)
		}
		ids = append(ids, id)
	}
	return ids
}

// testAppendReopen: appends get consecutive indices across tile boundaries, survive Close and
// reopen under the same key, and the reopened log goes on where it stopped; Append after Close
// is ErrClosed.
func testAppendReopen(t *testing.T, d Driver) {
	l := d.Open(t)
	want := appendN(t, l, "a", 0, 257)
	vkey, origin := l.VerifierKey(), l.Origin()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), record("late", 0)); !errors.Is(err, tlog.ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	l = d.Open(t)
	defer l.Close()
	if l.VerifierKey() != vkey || l.Origin() != origin {
		t.Fatalf("reopened as %q %q, want %q %q", l.Origin(), l.VerifierKey(), origin, vkey)
	}
	want = append(want, appendN(t, l, "a", 257, 2)...)
	if got := logged(t, serve(t, l)); !slices.Equal(got, want) {
		t.Fatalf("log holds %d records, want the %d acknowledged in order", len(got), len(want))
	}
}

// testConcurrentAppends: concurrent appends get distinct indices, and each index holds the
// record acknowledged with it.
func testConcurrentAppends(t *testing.T, d Driver) {
	l := d.Open(t)
	defer l.Close()
	const workers, each = 16, 40
	var (
		mu  sync.Mutex
		got = map[uint64]string{}
		wg  sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%02d-%03d", w, i)
				idx, err := l.Append(context.Background(), record(id, i))
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				mu.Lock()
				if prev, dup := got[idx]; dup {
					t.Errorf("index %d given to %s and %s", idx, prev, id)
				}
				got[idx] = id
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	ids := logged(t, serve(t, l))
	if len(ids) != workers*each || len(got) != workers*each {
		t.Fatalf("log holds %d records, %d acknowledged; want %d", len(ids), len(got), workers*each)
	}
	for idx, id := range got {
		if ids[idx] != id {
			t.Fatalf("index %d holds %s, acknowledged for %s", idx, ids[idx], id)
		}
	}
}

// testCheckpoint: the served checkpoint is signed by VerifierKey, names Origin, covers every
// acknowledged record, and does not open under another key.
func testCheckpoint(t *testing.T, d Driver) {
	l := d.Open(t)
	defer l.Close()
	src := serve(t, l)
	size := 0
	for _, n := range []int{0, 1, 300} {
		appendN(t, l, "c", size, n-size)
		size = n
		b := get(t, src.Log+"checkpoint")
		cp, err := tlog.OpenCheckpoint(b, l.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		if cp.Origin != l.Origin() {
			t.Fatalf("checkpoint origin %q, log origin %q", cp.Origin, l.Origin())
		}
		if cp.Size != uint64(n) {
			t.Fatalf("checkpoint size %d after %d appends", cp.Size, n)
		}
		if n == 0 && string(cp.Root) != string(tlog.EmptyRoot()) {
			t.Fatal("empty log's checkpoint root is not the empty tree's")
		}
	}
	_, other, err := note.GenerateKey(rand.Reader, l.Origin())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tlog.OpenCheckpoint(get(t, src.Log+"checkpoint"), other); !errors.Is(err, tlog.ErrCheckpoint) {
		t.Fatalf("checkpoint under another key = %v, want ErrCheckpoint", err)
	}
}

func get(t *testing.T, u string) []byte {
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

// testProofs: inclusion proofs of entries in full and partial tiles check against the
// checkpoint, and the log is consistent with every checkpoint it served before.
func testProofs(t *testing.T, d Driver) {
	ctx := context.Background()
	l := d.Open(t)
	defer l.Close()
	src := serve(t, l)
	var olds [][]byte
	for _, n := range []int{1, 100, 256, 300} {
		from := sizeOf(t, src)
		appendN(t, l, "p", from, n-from)
		olds = append(olds, get(t, src.Log+"checkpoint"))
	}
	cp := olds[len(olds)-1]
	for _, idx := range []uint64{0, 99, 255, 256, 299} {
		ip, err := auditor.Prove(ctx, auditor.ProveOptions{Source: src, Index: idx})
		if err != nil {
			t.Fatalf("prove %d: %v", idx, err)
		}
		r, err := auditor.VerifyInclusion(ip, cp, src.Key)
		if err != nil {
			t.Fatalf("inclusion of %d: %v", idx, err)
		}
		if want := fmt.Sprintf("p-%04d", idx); r.RequestID != want {
			t.Fatalf("entry %d is %s, want %s", idx, r.RequestID, want)
		}
	}
	for _, old := range olds {
		if _, err := auditor.Consistency(ctx, auditor.ConsistencyOptions{Source: src, Old: old}); err != nil {
			t.Fatalf("consistency: %v", err)
		}
		if _, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: src, Trusted: old}); err != nil {
			t.Fatalf("verify: %v", err)
		}
	}
}

func sizeOf(t *testing.T, src auditor.Source) int {
	t.Helper()
	cp, err := tlog.OpenCheckpoint(get(t, src.Log+"checkpoint"), src.Key)
	if err != nil {
		t.Fatal(err)
	}
	return int(cp.Size)
}

// testUnwritable: when the store refuses writes, Append fails with ErrUnwritable and
// acknowledges nothing: after a repair and a reopen the log holds exactly the records
// acknowledged, and grows again.
func testUnwritable(t *testing.T, d Driver) {
	if d.Break == nil {
		t.Skip("the driver cannot be broken on purpose")
	}
	ctx := context.Background()
	l := d.Open(t)
	want := appendN(t, l, "u", 0, 5)
	d.Break(t)
	for i := range 3 {
		_, err := l.Append(ctx, record(fmt.Sprintf("refused-%d", i), i))
		if !errors.Is(err, tlog.ErrUnwritable) {
			t.Fatalf("Append to a broken store = %v, want ErrUnwritable", err)
		}
	}
	if d.Repair != nil {
		d.Repair(t)
	}
	l.Close()
	l = d.Open(t)
	defer l.Close()
	idx, err := l.Append(ctx, record("after", 9))
	if err != nil {
		t.Fatalf("Append after the repair: %v", err)
	}
	if idx != uint64(len(want)) {
		t.Fatalf("Append after the repair got index %d, want %d: refused records were logged", idx, len(want))
	}
	want = append(want, "after")
	if got := logged(t, serve(t, l)); !slices.Equal(got, want) {
		t.Fatalf("log holds %v, want %v", got, want)
	}
}

// testInvalidRecord: a record that cannot be encoded is audit.ErrInvalidRecord and takes no
// index.
func testInvalidRecord(t *testing.T, d Driver) {
	ctx := context.Background()
	l := d.Open(t)
	defer l.Close()
	for _, r := range []*audit.Record{nil, {Event: "attest", Verdict: "maybe"}, {Verdict: audit.VerdictAllow}} {
		if _, err := l.Append(ctx, r); !errors.Is(err, audit.ErrInvalidRecord) {
			t.Errorf("Append(%+v) = %v, want ErrInvalidRecord", r, err)
		}
	}
	// A long reason is cut, not refused, and a zero time is stamped.
	r := record("long", 0)
	r.Time = time.Time{}
	r.Reason = strings.Repeat("x", 2*audit.MaxReason)
	if idx, err := l.Append(ctx, r); err != nil || idx != 0 {
		t.Fatalf("Append of a long reason = %d, %v; want 0", idx, err)
	}
	if got := logged(t, serve(t, l)); !slices.Equal(got, []string{"long"}) {
		t.Fatalf("log holds %v", got)
	}
}
