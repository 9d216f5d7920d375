package tlog

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// GroupCommit is the single writer of a log backend: Append queues an encoded record and waits;
// one goroutine commits whatever queued up while the previous commit ran, as one batch, in the
// order queued. Both storage drivers (posix and postgres) write through it.
type GroupCommit struct {
	max    int
	linger time.Duration
	commit func(entries [][]byte) (first uint64, err error)

	mu     sync.RWMutex // guards closed against sends on reqs
	closed bool
	reqs   chan *groupReq
	done   chan struct{}
}

type groupReq struct {
	data []byte
	res  chan groupRes
}

type groupRes struct {
	index uint64
	err   error
}

// DefaultLinger is the most a busy writer waits for more records before it commits a batch.
const DefaultLinger = 200 * time.Microsecond

// busyGap: the writer lingers while records arrive less than busyGap lingers apart on average
// (5 000 a second at the default), that is while a flush per record would cost more than the
// wait.
const busyGap = 5

// StartGroupCommit starts the writer. commit makes a batch durable and returns the index of its
// first entry; on error no entry of the batch is acknowledged. It is only ever called from the
// writer goroutine, so it may keep state without locks. max bounds a batch.
//
// linger trades a little latency for larger batches under load: when records have been
// arriving less than 5 lingers apart, the writer waits up to linger (or until the batch is full)
// for more before it commits, so that several share one flush; a lone record is committed at
// once. 0 never waits.
func StartGroupCommit(max int, linger time.Duration, commit func(entries [][]byte) (first uint64, err error)) *GroupCommit {
	g := &GroupCommit{max: max, linger: linger, commit: commit, reqs: make(chan *groupReq, max), done: make(chan struct{})}
	go g.run()
	return g
}

// Append hands an encoded record to the writer and returns its index once its batch is
// committed. After Close it fails with ErrClosed. A cancelled ctx returns its error; the record
// may still be committed.
func (g *GroupCommit) Append(ctx context.Context, entry []byte) (uint64, error) {
	req := &groupReq{data: entry, res: make(chan groupRes, 1)}
	if err := g.enqueue(ctx, req); err != nil {
		return 0, err
	}
	select {
	case r := <-req.res:
		return r.index, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// AppendOrdered queues entries in order, one after the other, and returns their indices once
// all are committed: the writer batches them as it batches concurrent Appends, but keeps their
// order (other callers' entries may come between them). On error, entries before the failed
// one may be committed.
func (g *GroupCommit) AppendOrdered(ctx context.Context, entries [][]byte) ([]uint64, error) {
	reqs := make([]*groupReq, len(entries))
	for i, e := range entries {
		reqs[i] = &groupReq{data: e, res: make(chan groupRes, 1)}
		if err := g.enqueue(ctx, reqs[i]); err != nil {
			return nil, err
		}
	}
	idx := make([]uint64, len(entries))
	for i, req := range reqs {
		select {
		case r := <-req.res:
			if r.err != nil {
				return nil, r.err
			}
			idx[i] = r.index
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return idx, nil
}

func (g *GroupCommit) enqueue(ctx context.Context, req *groupReq) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return fmt.Errorf("audit: %w", ErrClosed)
	}
	select {
	case g.reqs <- req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting appends and waits until the pending ones are committed. It reports
// whether this call was the one that closed (so the caller releases its resources once).
func (g *GroupCommit) Close() bool {
	g.mu.Lock()
	first := !g.closed
	if first {
		g.closed = true
		close(g.reqs)
	}
	g.mu.Unlock()
	<-g.done
	return first
}

func (g *GroupCommit) run() {
	defer close(g.done)
	batch := make([]*groupReq, 0, g.max)
	entries := make([][]byte, 0, g.max)
	// gap is a moving average of the time between records, as the writer receives them.
	var gap time.Duration
	var last time.Time
	seen := func(now time.Time) {
		if !last.IsZero() {
			d := now.Sub(last)
			if gap == 0 {
				gap = d
			} else {
				gap += (d - gap) / 8
			}
		}
		last = now
	}
	for req := range g.reqs {
		seen(time.Now())
		batch = append(batch[:0], req)
		if g.linger > 0 && gap > 0 && gap < busyGap*g.linger {
			// Wait for the next record at most twice the usual gap, and all in all at most
			// linger: when every appender is already waiting, nothing more comes.
			end := time.Now().Add(g.linger)
			t := time.NewTimer(g.linger)
		gather:
			for len(batch) < g.max {
				wait := min(time.Until(end), 2*gap)
				if wait <= 0 {
					break
				}
				t.Reset(wait)
				select {
				case r, ok := <-g.reqs:
					if !ok {
						break gather
					}
					seen(time.Now())
					batch = append(batch, r)
				case <-t.C:
					break gather
				}
			}
			t.Stop() // since Go 1.23 Reset and Stop need no draining
		}
	drain:
		for len(batch) < g.max {
			select {
			case r, ok := <-g.reqs:
				if !ok {
					break drain
				}
				seen(time.Now())
				batch = append(batch, r)
			default:
				break drain
			}
		}
		entries = entries[:0]
		for _, r := range batch {
			entries = append(entries, r.data)
		}
		first, err := g.commit(entries)
		for i, r := range batch {
			if err != nil {
				r.res <- groupRes{err: err}
			} else {
				r.res <- groupRes{index: first + uint64(i)}
			}
		}
	}
}
