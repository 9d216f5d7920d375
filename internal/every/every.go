// Package every runs a refresh at a fixed interval until its context ends: the poll loop of
// the state replicas share (revocations, the consent registry, the collateral bundle).
package every

import (
	"context"
	"time"
)

// Run calls f every d until ctx ends. onError, if not nil, is told of each error f returns
// while ctx is still live (a log line); the next tick tries again.
func Run(ctx context.Context, d time.Duration, f func(context.Context) error, onError func(error)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := f(ctx); err != nil && onError != nil && ctx.Err() == nil {
				onError(err)
			}
		}
	}
}
