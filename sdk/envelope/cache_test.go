package envelope

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/secret"
)

// counting passes through to a real source and counts unwraps.
type counting struct {
	KeySource
	unwraps atomic.Int64
}

func (c *counting) UnwrapDataKey(ctx context.Context, name string, wrapped []byte, kc kms.Context) (*secret.Bytes, error) {
	c.unwraps.Add(1)
	return c.KeySource.UnwrapDataKey(ctx, name, wrapped, kc)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestCache(t *testing.T) {
	ctx := context.Background()
	src := &counting{KeySource: localSource(t)}
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := NewCachingKeySource(src, CacheOptions{MaxEntries: 2, TTL: time.Minute, Now: clk.now})

	// Objects written without the cache, so the cache starts empty.
	objs := make([][]byte, 3)
	for i := range objs {
		var err error
		if objs[i], err = Encrypt(ctx, src, testKey, caseCtx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	open := func(i int) {
		t.Helper()
		pt, err := Decrypt(ctx, c, caseCtx, objs[i])
		if err != nil || len(pt) != 1 || pt[0] != byte(i) {
			t.Fatalf("object %d: %v", i, err)
		}
	}
	steps := []struct {
		name    string
		do      func()
		unwraps int64
		entries int
	}{
		{"first open unwraps", func() { open(0) }, 1, 1},
		{"second open is cached", func() { open(0) }, 1, 1},
		{"another object", func() { open(1) }, 2, 2},
		{"third object evicts the least recently used", func() { open(2) }, 3, 2},
		{"evicted object unwraps again", func() { open(0) }, 4, 2},
		{"recent object still cached", func() { open(2) }, 4, 2},
		{"expired after TTL", func() { clk.add(time.Minute); open(2) }, 5, 2},
		{"purge expired", func() { clk.add(59 * time.Second); c.PurgeExpired() }, 5, 1},
		{"purge", func() { c.Purge() }, 5, 0},
	}
	for _, s := range steps {
		s.do()
		if got := src.unwraps.Load(); got != s.unwraps {
			t.Fatalf("%s: %d unwraps, want %d", s.name, got, s.unwraps)
		}
		if got := c.Len(); got != s.entries {
			t.Fatalf("%s: %d entries, want %d", s.name, got, s.entries)
		}
	}

	// A wrong context is not served from the cache.
	open(0)
	if _, err := c.UnwrapDataKey(ctx, testKey, []byte("x"), kms.Context{"case": "other"}); err == nil {
		t.Fatal("unwrapped garbage")
	}
}

func TestCacheOwnership(t *testing.T) {
	ctx := context.Background()
	c := NewCachingKeySource(localSource(t), CacheOptions{})
	dek, wrapped, err := c.GenerateDataKey(ctx, testKey, caseCtx)
	if err != nil {
		t.Fatal(err)
	}
	want := secret.New(append([]byte(nil), dek.Reveal()...))
	dek.Wipe() // the caller's copy: the cache must not care

	got, err := c.UnwrapDataKey(ctx, testKey, wrapped, caseCtx)
	if err != nil || !got.Equal(want) {
		t.Fatalf("cached key changed when the caller wiped its copy: %v", err)
	}
	got.Wipe()
	again, _ := c.UnwrapDataKey(ctx, testKey, wrapped, caseCtx)
	if !again.Equal(want) {
		t.Fatal("second caller's key was wiped by the first")
	}

	// Eviction wipes the cache's own copy, not the one handed out.
	c.mu.Lock()
	held := c.lru.Front().Value.(*cacheEntry).key
	c.mu.Unlock()
	c.Purge()
	if held.Len() != 0 {
		t.Fatal("purged key not wiped")
	}
	if !again.Equal(want) {
		t.Fatal("handed-out key wiped by purge")
	}
}

func TestCacheConcurrent(t *testing.T) {
	ctx := context.Background()
	src := localSource(t)
	c := NewCachingKeySource(src, CacheOptions{MaxEntries: 3, TTL: time.Hour})
	objs := make([][]byte, 5)
	for i := range objs {
		objs[i], _ = Encrypt(ctx, src, testKey, caseCtx, []byte{byte(i)})
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for j := range 50 {
				i := (g + j) % len(objs)
				pt, err := Decrypt(ctx, c, caseCtx, objs[i])
				if err != nil || pt[0] != byte(i) {
					t.Errorf("object %d: %v", i, err)
					return
				}
				if j%17 == 0 {
					c.Purge()
				}
			}
		})
	}
	wg.Wait()
	if c.Len() > 3 {
		t.Fatalf("%d entries, bound is 3", c.Len())
	}
}
