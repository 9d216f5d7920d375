package envelope

import (
	"context"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/secret"
)

// leasing is a LeasedKeySource over a real source: every key it returns may be held for lease.
type leasing struct {
	*counting
	now   func() time.Time
	lease time.Duration
}

func (l *leasing) GenerateDataKeyLeased(ctx context.Context, name string, kc kms.Context) (*secret.Bytes, []byte, time.Time, error) {
	dek, wrapped, err := l.GenerateDataKey(ctx, name, kc)
	return dek, wrapped, l.now().Add(l.lease), err
}

func (l *leasing) UnwrapDataKeyLeased(ctx context.Context, name string, wrapped []byte, kc kms.Context) (*secret.Bytes, time.Time, error) {
	dek, err := l.UnwrapDataKey(ctx, name, wrapped, kc)
	return dek, l.now().Add(l.lease), err
}

// TestCacheLease: a key is not served from a cache after trustd's lease on it ended, also when
// one cache sits over another (Client.KeySource() is a cache; the teleconsult example wraps it
// in its own). A cache that ignored the inner cache's lease would keep releasing the key for
// its whole TTL after the lease, which ends when the workload's attestation does.
func TestCacheLease(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	src := &leasing{counting: &counting{KeySource: localSource(t)}, now: clk.now, lease: 10 * time.Second}
	ct, err := Encrypt(ctx, src, testKey, caseCtx, []byte("record"))
	if err != nil {
		t.Fatal(err)
	}
	inner := NewCachingKeySource(src, CacheOptions{TTL: time.Hour, Now: clk.now})
	for _, tc := range []struct {
		name string
		ks   KeySource
	}{
		{"one cache", NewCachingKeySource(src, CacheOptions{TTL: time.Hour, Now: clk.now})},
		{"cache over a cache", NewCachingKeySource(inner, CacheOptions{TTL: time.Hour, Now: clk.now})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner.Purge()
			before := src.unwraps.Load()
			for _, step := range []struct {
				wait    time.Duration
				unwraps int64
			}{{0, 1}, {9 * time.Second, 1}, {time.Second, 2}, {5 * time.Second, 2}, {5 * time.Second, 3}} {
				clk.add(step.wait)
				if _, err := Decrypt(ctx, tc.ks, caseCtx, ct); err != nil {
					t.Fatal(err)
				}
				if got := src.unwraps.Load() - before; got != step.unwraps {
					t.Fatalf("after %v more: %d unwraps from the source, want %d (key served past its lease)", step.wait, got, step.unwraps)
				}
			}
		})
	}
}

// blocking holds every unwrap until release is closed, after telling started.
type blocking struct {
	KeySource
	started chan struct{}
	release chan struct{}
}

func (b *blocking) UnwrapDataKey(ctx context.Context, name string, wrapped []byte, kc kms.Context) (*secret.Bytes, error) {
	close(b.started)
	<-b.release
	return b.KeySource.UnwrapDataKey(ctx, name, wrapped, kc)
}

// TestPurgeInFlight: a key whose unwrap was under way when Purge ran (Client.Close, a change of
// grant) is handed to that caller but not kept: after Purge the cache holds nothing fetched
// before it.
func TestPurgeInFlight(t *testing.T) {
	ctx := context.Background()
	ks := localSource(t)
	ct, err := Encrypt(ctx, ks, testKey, caseCtx, []byte("record"))
	if err != nil {
		t.Fatal(err)
	}
	src := &blocking{KeySource: ks, started: make(chan struct{}), release: make(chan struct{})}
	c := NewCachingKeySource(src, CacheOptions{})
	done := make(chan error)
	go func() {
		_, err := Decrypt(ctx, c, caseCtx, ct)
		done <- err
	}()
	<-src.started
	c.Purge()
	close(src.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := c.Len(); n != 0 {
		t.Fatalf("%d keys cached after Purge, fetched before it", n)
	}
}
