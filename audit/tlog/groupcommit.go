package tlog

import (
	"context"
	"fmt"
	"sync"
)

// GroupCommit is the single writer of a log backend: Append queues an encoded record and waits;
// one goroutine commits whatever queued up while the previous commit ran, as one batch, in the
// order queued. Both storage drivers (posix and postgres) write through it.
type GroupCommit struct {
	max    int
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

// StartGroupCommit starts the writer. commit makes a batch durable and returns the index of its
// first entry; on error no entry of the batch is acknowledged. It is only ever called from the
// writer goroutine, so it may keep state without locks. max bounds a batch.
func StartGroupCommit(max int, commit func(entries [][]byte) (first uint64, err error)) *GroupCommit {
	g := &GroupCommit{max: max, commit: commit, reqs: make(chan *groupReq, max), done: make(chan struct{})}
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
	for req := range g.reqs {
		batch = append(batch[:0], req)
	drain:
		for len(batch) < g.max {
			select {
			case r, ok := <-g.reqs:
				if !ok {
					break drain
				}
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
