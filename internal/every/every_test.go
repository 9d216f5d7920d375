package every_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/internal/every"
)

// Run calls f on every tick, reports its errors, and returns once its context ends.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls, errs atomic.Int32
	done := make(chan struct{})
	go func() {
		every.Run(ctx, time.Millisecond, func(context.Context) error {
			if calls.Add(1)%2 == 0 {
				return errors.New("boom")
			}
			return nil
		}, func(error) { errs.Add(1) })
		close(done)
	}()
	for calls.Load() < 4 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if errs.Load() == 0 {
		t.Error("no error reported")
	}
}
