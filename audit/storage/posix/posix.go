package posix

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/tlog"
	"github.com/medicus-cloud/trust/internal/atomicfile"
)

// ErrLocked: another process has the log open for writing. The other errors are tlog's:
// tlog.ErrUnwritable, tlog.ErrClosed, tlog.ErrCorrupt, and audit.ErrInvalidRecord.
var ErrLocked = errors.New("audit log locked")

// Files in Options.Dir: the note signing key, the public tree that Handler serves and
// auditors copy, and a scratch directory for the checkpoint each commit renames into place.
const (
	keyFile   = "note.key"
	pubFile   = "note.pub"
	publicDir = "log"
	tmpDir    = "tmp"
)

// Options configure Open. The zero value other than Dir is usable.
type Options struct {
	// Dir holds the log; it is created (0700) if missing.
	Dir string
	// Origin names a new log (its checkpoint origin and note key name); default
	// tlog.DefaultOrigin.
	// For an existing log it must be empty or equal to the origin in Dir.
	Origin string
	// Now stamps records whose Time is zero; default time.Now.
	Now func() time.Time
	// Rand makes the note key on first use; default crypto/rand.
	Rand io.Reader
	// MaxBatch bounds a group commit; default tlog.DefaultMaxBatch.
	MaxBatch int
	// JournalLimit is how many bytes the journal grows to before the tiles are synced in the
	// background and a new journal begins; default DefaultJournalLimit.
	JournalLimit int64
	// PublishInterval is the least time between two publications of tiles and a checkpoint
	// while appends keep coming; default DefaultPublishInterval. It never delays an Append (a
	// record is acknowledged once the journal holds it), only how soon a reader of the
	// directory sees it; Handler and Publish always show every acknowledged record.
	PublishInterval time.Duration
}

// DefaultPublishInterval bounds how often a busy log writes its tiles and checkpoint: batches
// committed within it are published together, so each partial tile is written once per
// interval rather than once per batch. One second is the least interval C2SP logs such as
// Tessera's publish checkpoints at, and what a monitor polling the directory can use; readers
// through Handler or Publish never wait for it. (Each new partial tile is a file created, which
// costs 0.2-0.4 ms of CPU on a small VM's ext4: at 50 ms that was about 5% of a busy trustd.)
const DefaultPublishInterval = time.Second

// Log is an append-only Merkle-tree log of records on local disk, as C2SP tlog-tiles with
// signed tlog-checkpoints. It is safe for concurrent use.
type Log struct {
	lock   *os.File
	dir    string
	pub    string
	signer note.Signer
	vkey   string
	now    func() time.Time
	max    int

	gc *tlog.GroupCommit

	// Owned by the writer goroutine after Open returns, and by Sync while it holds wmu.
	wmu    sync.Mutex
	st     *tlog.Edge
	broken error
	j      *journal
	jlimit int64
	tail   [][]byte // the entries after j.base, to carry over into the next journal

	// The publisher writes the tiles and checkpoints of committed batches, off the append
	// path: commit hands it each batch's tiles and signed checkpoint; it writes the newest of
	// each tile and the newest checkpoint once per interval (see publish.go).
	out publisher

	// The background sync: the writer asks it to make a tree durable; it answers in synced.
	syncReq  chan syncRequest
	syncDone chan struct{}
	syncMu   sync.Mutex
	synced   *syncRequest // the last tree made durable, not yet used to start a new journal
	syncErr  error
}

type syncRequest struct {
	size uint64
	root []byte
	full []string
}

var _ tlog.Log = (*Log)(nil)

// Open opens the log in o.Dir, creating it and its Ed25519 note key (0600) on first use,
// and recovers from a crash: whatever was written after the last checkpoint is discarded, and
// the tree is checked against the checkpoint before any append.
func Open(ctx context.Context, o Options) (*Log, error) {
	if o.Dir == "" {
		return nil, errors.New("audit: Options.Dir is empty")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = tlog.DefaultMaxBatch
	}
	if o.JournalLimit <= 0 {
		o.JournalLimit = DefaultJournalLimit
	}
	if o.PublishInterval <= 0 {
		o.PublishInterval = DefaultPublishInterval
	}
	for _, d := range []string{o.Dir, filepath.Join(o.Dir, publicDir), filepath.Join(o.Dir, tmpDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("audit: %w: %v", tlog.ErrUnwritable, err)
		}
	}
	lock, err := lockDir(o.Dir)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			lock.Close()
		}
	}()
	skey, err := loadOrCreateKey(o)
	if err != nil {
		return nil, err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("audit: %w: note key %s: %v", tlog.ErrCorrupt, keyFile, err)
	}
	if o.Origin != "" && o.Origin != signer.Name() {
		return nil, fmt.Errorf("audit: origin %q differs from the log's %q", o.Origin, signer.Name())
	}
	vkey, err := tlog.VerifierKey(skey)
	if err != nil {
		return nil, err
	}
	l := &Log{
		lock:   lock,
		dir:    o.Dir,
		pub:    filepath.Join(o.Dir, publicDir),
		signer: signer,
		vkey:   vkey,
		now:    o.Now,
		max:    o.MaxBatch,
		jlimit: o.JournalLimit,
	}
	if err := atomicfile.WriteFile(filepath.Join(o.Dir, pubFile), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("audit: %w: %v", tlog.ErrUnwritable, err)
	}
	if l.st, err = l.recover(ctx); err != nil {
		return nil, err
	}
	l.syncReq = make(chan syncRequest, 1)
	l.syncDone = make(chan struct{})
	go l.syncer()
	l.startPublisher(o.PublishInterval, l.st)
	l.gc = tlog.StartGroupCommit(o.MaxBatch, tlog.DefaultLinger, l.commit)
	ok = true
	return l, nil
}

func loadOrCreateKey(o Options) (string, error) {
	p := filepath.Join(o.Dir, keyFile)
	b, err := os.ReadFile(p)
	if err == nil {
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("audit: %w: %v", tlog.ErrUnwritable, err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return "", fmt.Errorf("audit: note key %s is readable by others (mode %v): want 0600", p, fi.Mode().Perm())
		}
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("audit: %w: %v", tlog.ErrUnwritable, err)
	}
	// A key without a log is fine, a log without its key is not: it could never grow again.
	if _, err := os.Stat(filepath.Join(o.Dir, publicDir, "checkpoint")); err == nil {
		return "", fmt.Errorf("audit: %w: %s has a checkpoint but no %s", tlog.ErrCorrupt, o.Dir, keyFile)
	}
	origin := o.Origin
	if origin == "" {
		origin = tlog.DefaultOrigin
	}
	skey, _, err := note.GenerateKey(o.Rand, origin)
	if err != nil {
		return "", fmt.Errorf("audit: note key: %v", err)
	}
	if err := atomicfile.WriteFile(p, []byte(skey+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("audit: %w: %v", tlog.ErrUnwritable, err)
	}
	return skey, nil
}

// VerifierKey returns the note verifier key auditors use to check checkpoints.
func (l *Log) VerifierKey() string { return l.vkey }

// Origin returns the log's origin line.
func (l *Log) Origin() string { return l.signer.Name() }

// Handler serves the log read-only at the C2SP tlog-tiles paths "checkpoint", "tile/<L>/<N>",
// "tile/entries/<N>" (and their ".p/<W>" partials) below wherever it is mounted: use
// http.StripPrefix, e.g. mux.Handle("/audit/", http.StripPrefix("/audit/", log.Handler())).
// Nothing else in the log's directory (the note key in particular) is reachable. A request
// for the checkpoint first publishes every acknowledged record (Publish), so a client that
// fetches the checkpoint after an answer sees the record behind it.
func (l *Log) Handler() http.Handler {
	h := tlog.DirHandler(l.pub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.TrimPrefix(r.URL.Path, "/") == "checkpoint" {
			// A failed publication leaves the last published checkpoint, which stays valid.
			_ = l.Publish(r.Context())
		}
		h.ServeHTTP(w, r)
	})
}

// Append writes r to the log and returns its index once it is durable: the batch holding it is
// in the journal, fdatasync'ed. Its tiles and a signed checkpoint covering it are published in
// the background, within PublishInterval (what a crash loses of
// them, Open rebuilds from the journal). Concurrent calls share one commit. If the log cannot
// be written the record is not acknowledged (tlog.ErrUnwritable); once a publication fails,
// every later Append fails too, until the log is reopened. A cancelled ctx returns its error;
// the record may still be logged.
func (l *Log) Append(ctx context.Context, r *audit.Record) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	b, err := audit.MarshalForAppend(r, l.now)
	if err != nil {
		return 0, fmt.Errorf("audit: %w", err)
	}
	return l.gc.Append(ctx, b)
}

// Close waits for pending appends to finish, makes the tiles and the checkpoint durable,
// removes the journal, stops the log and releases its directory. Appends after Close fail with
// tlog.ErrClosed. If the final sync fails the journal stays, and the next Open replays it.
func (l *Log) Close() error {
	if !l.gc.Close() {
		return nil
	}
	perr := l.stopPublisher()
	close(l.syncReq)
	<-l.syncDone
	l.wmu.Lock()
	defer l.wmu.Unlock()
	err := l.syncErr
	if err == nil {
		err = perr
	}
	if err == nil && l.broken == nil {
		if err = syncTree(l.pub); err == nil {
			l.removePartials(l.out.takeFull())
			if err = os.Remove(filepath.Join(l.dir, journalFile)); err == nil {
				err = atomicfile.SyncDir(l.dir)
			}
		}
	}
	l.j.close()
	if cerr := l.lock.Close(); err == nil {
		err = cerr
	}
	l.broken = fmt.Errorf("audit: %w", tlog.ErrClosed)
	if err != nil {
		return fmt.Errorf("audit: %w: %v", tlog.ErrUnwritable, err)
	}
	return nil
}

// commit makes a batch durable; the group-commit writer calls it, one batch at a time. The
// batch goes to the journal with one fdatasync, and its tiles and tree head go to the
// publisher, which writes them, and signs a checkpoint, after the answer. Nothing on this path
// creates a file or signs.
func (l *Log) commit(entries [][]byte) (uint64, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.broken != nil {
		// A journal, publication or sync failure: what is on disk is no longer known. Fail
		// closed.
		return 0, l.broken
	}
	if err := l.out.failed(); err != nil {
		// Publication is failing: acknowledge nothing until it succeeds again.
		return 0, fmt.Errorf("audit: %w: tiles: %v", tlog.ErrUnwritable, err)
	}
	if err := l.rotate(); err != nil {
		l.broken = fmt.Errorf("audit: %w: %v", tlog.ErrUnwritable, err)
		return 0, l.broken
	}
	old := l.st
	st, tiles, root, err := old.Append(entries)
	if err != nil {
		return 0, fmt.Errorf("audit: %w: %v", tlog.ErrUnwritable, err)
	}
	if err := l.j.append(old.Size(), entries); err != nil {
		// The journal may hold part of the frame, or all of it: only a reopen can tell.
		l.broken = fmt.Errorf("audit: %w: journal: %v", tlog.ErrUnwritable, err)
		return 0, l.broken
	}
	// From here the batch is in the log.
	l.st = st
	l.tail = append(l.tail, entries...)
	l.out.hand(tiles, st.Size(), root, l.j.n >= l.jlimit)
	return old.Size(), nil
}

// Sync publishes every acknowledged record and makes the tiles and checkpoint durable now, removes the partial tiles that
// full ones superseded and starts a new, empty journal. Appends wait while it runs. The log
// does this by itself in the background whenever the journal grows past its limit.
func (l *Log) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.broken != nil {
		return l.broken
	}
	if err := l.Publish(ctx); err != nil {
		if ctx.Err() == nil {
			l.broken = err
		}
		return err
	}
	if err := syncTree(l.pub); err != nil {
		l.broken = fmt.Errorf("audit: %w: %v", tlog.ErrUnwritable, err)
		return l.broken
	}
	l.removePartials(l.out.takeFull())
	j, err := createJournal(l.dir, l.st.Size(), l.st.Root(), nil, l.jlimit)
	if err != nil {
		l.broken = fmt.Errorf("audit: %w: journal: %v", tlog.ErrUnwritable, err)
		return l.broken
	}
	l.j.close()
	l.j, l.tail = j, nil
	return nil
}

// rotate starts a new journal from the last tree the background sync made durable, carrying
// over the entries after it. The old journal stays valid until the new one is renamed over it.
func (l *Log) rotate() error {
	l.syncMu.Lock()
	sp, serr := l.synced, l.syncErr
	l.synced = nil
	l.syncMu.Unlock()
	if serr != nil {
		return serr
	}
	if sp == nil || sp.size < l.j.base {
		return nil
	}
	keep := l.tail[sp.size-l.j.base:]
	j, err := createJournal(l.dir, sp.size, sp.root, keep, l.jlimit)
	if err != nil {
		return err
	}
	l.j.close()
	l.j = j
	l.tail = append([][]byte(nil), keep...)
	return nil
}

// syncer makes the published tree durable in the background, so that the journal can restart
// from it, and then removes the partial tiles that full ones have superseded.
func (l *Log) syncer() {
	defer close(l.syncDone)
	for req := range l.syncReq {
		err := syncTree(l.pub)
		if err == nil {
			l.removePartials(req.full)
		}
		l.syncMu.Lock()
		if err != nil {
			l.syncErr = err
		} else {
			l.synced = &req
		}
		l.syncMu.Unlock()
	}
}

// removePartials removes the partial tiles of full tiles that are durable. Readers with an
// older checkpoint fall back to a prefix of the full tile. Failures leave only garbage.
func (l *Log) removePartials(full []string) {
	for _, p := range full {
		_ = os.RemoveAll(filepath.Join(l.pub, filepath.FromSlash(p)+".p"))
	}
}
