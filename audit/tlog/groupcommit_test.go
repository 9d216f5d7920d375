package tlog

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestGroupCommitLinger: a lone record is committed at once, however long the linger; records
// arriving close together are gathered into batches of several while the writer lingers.
func TestGroupCommitLinger(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var sizes []int
	next := uint64(0)
	g := StartGroupCommit(64, 50*time.Millisecond, func(entries [][]byte) (uint64, error) {
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, len(entries))
		first := next
		next += uint64(len(entries))
		return first, nil
	})
	defer g.Close()

	// Idle: spaced records never wait for company.
	for i := range 3 {
		start := time.Now()
		if _, err := g.Append(ctx, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 40*time.Millisecond {
			t.Fatalf("a lone record waited %v", d)
		}
		time.Sleep(300 * time.Millisecond)
	}

	// Busy: a stream of records every millisecond shares batches.
	mu.Lock()
	sizes = nil
	mu.Unlock()
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := g.Append(ctx, []byte(fmt.Sprint(i))); err != nil {
				t.Error(err)
			}
		}()
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) > 100 {
		t.Fatalf("200 records a millisecond apart took %d commits, want batches", len(sizes))
	}
}
