package posix

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/medicus-cloud/trust/audit/tlog"
)

// The publisher writes what commits hand it: the tiles, entry bundles and tree head of each
// batch already durable in the journal, and signs the checkpoints it publishes. It writes only the newest version of each tile
// (a partial tile that a later batch widened is skipped, as no published checkpoint ever needs
// it) and only the newest checkpoint, after its tiles, at most once per interval while batches
// keep coming, at once when a reader asks (Publish). A failed write refuses every later commit
// (fail closed) and is tried again each interval; once it succeeds, commits go on. Close tries
// once more; if that fails the journal stays, and the next Open rebuilds the tiles from it.

// retryInterval is the most the publisher waits before it tries a failed publication again.
const retryInterval = 100 * time.Millisecond

type tileKey struct {
	level int
	index uint64
}

type publisher struct {
	l        *Log
	interval time.Duration

	mu        sync.Mutex
	pending   map[tileKey]tlog.Tile
	cpSize    uint64 // the newest tree handed over; waiting while larger than published
	cpRoot    []byte
	published uint64 // the size of the checkpoint in the directory
	err       error
	full      []string      // full tiles written since the last sync request
	wantSync  bool          // the journal passed its limit: ask for a sync after the next write
	progress  chan struct{} // closed and replaced at each publication or failure

	kick  chan struct{} // a batch was handed over
	flush chan struct{} // a reader waits
	stop  chan struct{} // Close: write what is pending and end
	done  chan struct{}
	dead  bool // tests: end without writing what is pending, as a SIGKILL would
}

func (l *Log) startPublisher(interval time.Duration, st *tlog.Edge) {
	l.out = publisher{
		l: l, interval: interval, pending: map[tileKey]tlog.Tile{},
		cpSize: st.Size(), cpRoot: st.Root(), published: st.Size(), progress: make(chan struct{}),
		kick: make(chan struct{}, 1), flush: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go l.out.run()
}

// hand queues a committed batch's tiles and tree head; the writer calls it under wmu.
func (p *publisher) hand(tiles []tlog.Tile, size uint64, root []byte, journalFull bool) {
	p.mu.Lock()
	for _, t := range tiles {
		p.pending[tileKey{t.Level, t.Index}] = t
	}
	p.cpSize, p.cpRoot = size, root
	p.wantSync = p.wantSync || journalFull
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *publisher) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// takeFull returns the full tiles written since the last sync request and forgets them.
func (p *publisher) takeFull() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.full
	p.full = nil
	return f
}

// Publish returns once every record acknowledged before the call is in a published
// checkpoint, with its tiles: what a reader of the directory then sees. It fails with
// tlog.ErrUnwritable if publication failed (the log then acknowledges nothing more).
func (l *Log) Publish(ctx context.Context) error {
	p := &l.out
	p.mu.Lock()
	target := p.cpSize
	for p.published < target && p.err == nil {
		ch := p.progress
		p.mu.Unlock()
		select {
		case p.flush <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-p.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		p.mu.Lock()
		if p.published < target && p.err == nil && isClosed(p.done) {
			p.mu.Unlock()
			return fmt.Errorf("audit: %w", tlog.ErrClosed)
		}
	}
	err := p.err
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("audit: %w: tiles: %v", tlog.ErrUnwritable, err)
	}
	return nil
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// stopPublisher writes what is pending and ends the publisher; it returns the error that
// stopped publication, if any.
func (l *Log) stopPublisher() error {
	close(l.out.stop)
	<-l.out.done
	return l.out.failed()
}

func (p *publisher) run() {
	defer close(p.done)
	var last time.Time
	stopping := false
	for {
		p.mu.Lock()
		idle, dead := p.cpSize == p.published, p.dead
		p.mu.Unlock()
		if dead || idle && stopping {
			return
		}
		if idle {
			select {
			case <-p.kick:
			case <-p.flush:
			case <-p.stop:
				stopping = true
			}
			continue
		}
		// Let batches gather for the rest of the interval (after a failure, which refuses
		// every append until a publication succeeds: retryInterval at most), unless a reader
		// waits or the log closes.
		p.mu.Lock()
		every := p.interval
		if p.err != nil {
			every = min(every, retryInterval)
		}
		p.mu.Unlock()
		if wait := every - time.Since(last); wait > 0 && !stopping {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-p.flush:
			case <-p.stop:
				stopping = true
			}
			t.Stop()
		}
		p.mu.Lock()
		if p.dead {
			p.mu.Unlock()
			return
		}
		tiles := make([]tlog.Tile, 0, len(p.pending))
		for _, t := range p.pending {
			tiles = append(tiles, t)
		}
		size, root := p.cpSize, p.cpRoot
		p.mu.Unlock()

		err := p.write(tiles, size, root)
		last = time.Now()

		p.mu.Lock()
		p.err = err
		if err == nil {
			// Batches handed over meanwhile may have widened some tiles again: keep those.
			for _, t := range tiles {
				k := tileKey{t.Level, t.Index}
				if cur, ok := p.pending[k]; ok && cur.Width == t.Width {
					delete(p.pending, k)
				}
				if t.Full() {
					p.full = append(p.full, t.Path())
				}
			}
			p.published = size
			if p.wantSync {
				select {
				case p.l.syncReq <- syncRequest{size: size, root: root, full: p.full}:
					p.full, p.wantSync = nil, false
				default: // a sync is running; ask again after the next publication
				}
			}
		}
		close(p.progress)
		p.progress = make(chan struct{})
		p.mu.Unlock()
		if err != nil && stopping {
			return
		}
	}
}

// write writes tiles (lower levels first, so that a directory listing never shows a parent
// before its children; readers need only the checkpoint to come last) and then signs the
// checkpoint of the tree and renames it into place.
func (p *publisher) write(tiles []tlog.Tile, size uint64, root []byte) error {
	cp, err := tlog.SignCheckpoint(tlog.Checkpoint{Origin: p.l.signer.Name(), Size: size, Root: root}, p.l.signer)
	if err != nil {
		return err
	}
	sort.Slice(tiles, func(i, j int) bool {
		if tiles[i].Level != tiles[j].Level {
			return tiles[i].Level < tiles[j].Level
		}
		return tiles[i].Index < tiles[j].Index
	})
	if err := p.l.writeTiles(tiles); err != nil {
		return err
	}
	return place(filepath.Join(p.l.dir, tmpDir), filepath.Join(p.l.pub, "checkpoint"), cp, 0o644)
}
