package collstore_test

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/collstore"
	"github.com/medicus-cloud/trust/audit/storage/postgres/pgtest"
)

func open(t *testing.T, dsn string, o collstore.Options) *collstore.PG {
	t.Helper()
	s, err := collstore.OpenPG(context.Background(), dsn, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Two replicas on one database: a row is replaced only by a set fetched later, and one replica
// at a time holds a key's refresh lease.
func TestPG(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Start(t)
	a, b := open(t, pg.DSN(), collstore.Options{}), open(t, pg.DSN(), collstore.Options{})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const key = "sev-snp/Milan/crl-vcek"

	if files, _, err := a.Load(ctx, key); err != nil || files != nil {
		t.Fatalf("empty store: %v, %v", files, err)
	}
	steps := []struct {
		s     *collstore.PG
		files map[string][]byte
		at    time.Time
		want  map[string][]byte
		wantT time.Time
	}{
		{a, map[string][]byte{"crl.der": {1}}, t0, map[string][]byte{"crl.der": {1}}, t0},
		{b, map[string][]byte{"crl.der": {2}}, t0.Add(time.Hour), map[string][]byte{"crl.der": {2}}, t0.Add(time.Hour)},
		{a, map[string][]byte{"crl.der": {3}}, t0.Add(time.Minute), map[string][]byte{"crl.der": {2}}, t0.Add(time.Hour)}, // fetched earlier: kept out
		{a, map[string][]byte{"crl.der": {4}}, t0.Add(time.Hour), map[string][]byte{"crl.der": {2}}, t0.Add(time.Hour)},   // same time: kept out
	}
	for i, s := range steps {
		if err := s.s.Store(ctx, key, s.files, s.at); err != nil {
			t.Fatal(err)
		}
		for _, r := range []*collstore.PG{a, b} {
			files, at, err := r.Load(ctx, key)
			if err != nil || !maps.EqualFunc(files, s.want, func(x, y []byte) bool { return string(x) == string(y) }) || !at.Equal(s.wantT) {
				t.Errorf("step %d: %v at %v (%v), want %v at %v", i, files, at, err, s.want, s.wantT)
			}
		}
	}

	// The lease: one holder; released, the other takes it; an expired lease is taken over; a late
	// release does not free the new holder's lease.
	const k2 = "tdx/90c06f000000/platform"
	relA, ok, err := a.Lease(ctx, k2, time.Minute)
	if err != nil || !ok {
		t.Fatalf("first lease: %v %v", ok, err)
	}
	if files, _, err := a.Load(ctx, k2); err != nil || files != nil {
		t.Fatalf("a lease is not a stored set: %v %v", files, err)
	}
	if _, ok, err := b.Lease(ctx, k2, time.Minute); err != nil || ok {
		t.Fatalf("second lease while held: %v %v", ok, err)
	}
	relA()
	relB, ok, err := b.Lease(ctx, k2, 50*time.Millisecond)
	if err != nil || !ok {
		t.Fatalf("lease after release: %v %v", ok, err)
	}
	time.Sleep(100 * time.Millisecond)
	relA2, ok, err := a.Lease(ctx, k2, time.Minute)
	if err != nil || !ok {
		t.Fatalf("lease after expiry: %v %v", ok, err)
	}
	relB() // late
	if _, ok, _ := b.Lease(ctx, k2, time.Minute); ok {
		t.Fatal("a late release freed another replica's lease")
	}
	relA2()
}

// SharedRefresh: of replicas refreshing one key at once, one leads and the others get its set.
func TestSharedRefresh(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Start(t)
	const key = "sgx/00906ed50000/processor"
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var leads, got atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		s := open(t, pg.DSN(), collstore.Options{})
		wg.Go(func() {
			files, at, release := attest.SharedRefresh(ctx, s, key, time.Time{})
			defer release()
			if files == nil {
				leads.Add(1)
				time.Sleep(200 * time.Millisecond) // the fetch
				if err := s.Store(ctx, key, map[string][]byte{"x": {1}}, t0); err != nil {
					t.Error(err)
				}
				return
			}
			if at.Equal(t0) && string(files["x"]) == "\x01" {
				got.Add(1)
			}
		})
	}
	wg.Wait()
	if leads.Load() != 1 || got.Load() != 3 {
		t.Errorf("%d leaders, %d replicas got the leader's set; want 1 and 3", leads.Load(), got.Load())
	}
}

// A database that is gone is reported through OnError, never trusted.
func TestPGErrors(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Start(t)
	var ops []string
	var mu sync.Mutex
	s := open(t, pg.DSN(), collstore.Options{OnError: func(op, _ string, _ error) { mu.Lock(); ops = append(ops, op); mu.Unlock() }})
	pg.Stop("immediate")
	if files, _, err := s.Load(ctx, "k"); err == nil || files != nil {
		t.Errorf("load from a stopped database: %v %v", files, err)
	}
	if err := s.Store(ctx, "k", map[string][]byte{"x": {1}}, time.Now()); err == nil {
		t.Error("store into a stopped database")
	}
	if files, _, _ := attest.SharedRefresh(ctx, s, "k", time.Time{}); files != nil {
		t.Error("SharedRefresh returned files from a stopped database")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ops) != 3 || ops[0] != "load" || ops[1] != "store" || ops[2] != "lease" {
		t.Errorf("reported %v", ops)
	}
}
