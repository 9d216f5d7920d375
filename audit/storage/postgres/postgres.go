package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/tlog"
	"github.com/medicus-cloud/trust/internal/pgschema"
)

// Errors are those of package tlog, mapped the same way by the service: tlog.ErrUnwritable
// (the database could not be reached or the transaction failed: nothing was acknowledged) and
// tlog.ErrClosed to Unavailable, audit.ErrInvalidRecord to Internal, tlog.ErrCorrupt (the
// tables do not match the signed checkpoint, or the key does not match the log) to a failed
// start, or to Unavailable when found during an append.

// Defaults of Options.
const (
	DefaultMaxBatch = tlog.DefaultMaxBatch
	DefaultTimeout  = 10 * time.Second
)

// Options configure Open. DSN and Key are required; the zero value of the rest is usable.
type Options struct {
	// DSN is the PostgreSQL connection string (URL or key=value form, see pgx).
	DSN string
	// Key is the note signing key ("PRIVATE+KEY+origin+..."), the same for every replica of
	// the log: see ReadKeyFile and GenerateKey.
	Key string
	// Now stamps records whose Time is zero; default time.Now.
	Now func() time.Time
	// MaxBatch bounds how many records one transaction appends; default DefaultMaxBatch.
	MaxBatch int
	// Timeout bounds one append transaction; default DefaultTimeout.
	Timeout time.Duration
	// MaxConns bounds the connections that serve Handler and Export; default pgx's. Appends
	// have two more of their own, so that auditors' reads never hold them up.
	MaxConns int32
}

// Log is the audit log of one replica. It is safe for concurrent use.
type Log struct {
	pool    *pgxpool.Pool // appends
	rpool   *pgxpool.Pool // Handler and Export: readers cannot take the appends' connections
	signer  note.Signer
	vkey    string
	now     func() time.Time
	max     int
	timeout time.Duration

	gc *tlog.GroupCommit

	// Owned by the writer goroutine: the tree as of the last checkpoint this replica saw.
	edge *tlog.Edge
	cp   []byte

	// beforeCommit, if set (tests), runs inside the append transaction before COMMIT.
	beforeCommit func(ctx context.Context, tx pgx.Tx) error
}

var _ tlog.Log = (*Log)(nil)

// Open connects to the database, creates the tables and the empty signed tree if they are
// missing, and checks that the log there is signed by Key. Replicas may open it at the same time.
func Open(ctx context.Context, o Options) (*Log, error) {
	if o.DSN == "" {
		return nil, errors.New("postgres: Options.DSN is empty")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	signer, err := note.NewSigner(o.Key)
	if err != nil {
		return nil, errors.New("postgres: Options.Key is not a note signing key")
	}
	vkey, err := tlog.VerifierKey(o.Key)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(o.DSN)
	if err != nil {
		// The DSN may hold a password: do not repeat it.
		return nil, errors.New("postgres: Options.DSN does not parse as a PostgreSQL connection string")
	}
	// Append acknowledges on COMMIT: whoever could answer for a remote server (pgx's default
	// sslmode is prefer, which verifies nothing and falls back to plain text) could acknowledge
	// records that never reach it. The server's certificate must be verified.
	if err := pgschema.CheckTLS(&cfg.ConnConfig.Config); err != nil {
		return nil, fmt.Errorf("postgres: Options.DSN: %w", err)
	}
	// Append acknowledges on COMMIT: the commit must be durable whatever the server's or the
	// role's default is.
	switch v, set := cfg.ConnConfig.RuntimeParams["synchronous_commit"]; {
	case !set:
		cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	case v == "off":
		return nil, errors.New("postgres: synchronous_commit=off in the DSN would acknowledge records before they are durable")
	}
	// A replica that stops in the middle of an append (paused, cut off) holds the tree head
	// lock, and every other replica waits on it: have the server end such a transaction.
	if _, set := cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !set {
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.FormatInt((2 * o.Timeout).Milliseconds(), 10)
	}
	rcfg := cfg.Copy()
	if o.MaxConns > 0 {
		rcfg.MaxConns = o.MaxConns
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w: %v", tlog.ErrUnwritable, err)
	}
	rpool, err := pgxpool.NewWithConfig(ctx, rcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w: %v", tlog.ErrUnwritable, err)
	}
	l := &Log{
		pool:    pool,
		rpool:   rpool,
		signer:  signer,
		vkey:    vkey,
		now:     o.Now,
		max:     o.MaxBatch,
		timeout: o.Timeout,
	}
	if err := l.init(ctx); err != nil {
		pool.Close()
		rpool.Close()
		return nil, err
	}
	l.gc = tlog.StartGroupCommit(o.MaxBatch, tlog.DefaultLinger, l.commit)
	return l, nil
}

// init creates the schema and the empty tree, then loads and checks the current tree.
func (l *Log) init(ctx context.Context) error {
	empty, err := tlog.SignCheckpoint(tlog.Checkpoint{Origin: l.signer.Name(), Size: 0, Root: tlog.EmptyRoot()}, l.signer)
	if err != nil {
		return fmt.Errorf("postgres: %v", err)
	}
	err = pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLock)); err != nil {
			return err
		}
		// A role with only the privileges the README lists may not create tables: only try
		// when one is missing.
		var exist bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass('audit_head') IS NOT NULL AND to_regclass('audit_entries') IS NOT NULL
			AND to_regclass('audit_tiles') IS NOT NULL`).Scan(&exist); err != nil {
			return err
		}
		if !exist {
			if _, err := tx.Exec(ctx, schema); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO audit_head (size, checkpoint) VALUES (0, $1) ON CONFLICT DO NOTHING`, empty)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: %w: creating the tables: %v", tlog.ErrUnwritable, err)
	}
	// A server that does not fsync loses acknowledged records when it crashes.
	var fsync string
	if err := l.pool.QueryRow(ctx, `SHOW fsync`).Scan(&fsync); err != nil {
		return fmt.Errorf("postgres: %w: %v", tlog.ErrUnwritable, err)
	}
	if fsync != "on" {
		return fmt.Errorf("postgres: the server runs with fsync=%s: acknowledged records would not survive a crash", fsync)
	}
	tx, err := l.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return fmt.Errorf("postgres: %w: %v", tlog.ErrUnwritable, err)
	}
	defer tx.Rollback(ctx)
	var cp []byte
	if err := tx.QueryRow(ctx, `SELECT checkpoint FROM audit_head`).Scan(&cp); err != nil {
		return fmt.Errorf("postgres: %w: %v", tlog.ErrUnwritable, err)
	}
	return l.load(ctx, tx, cp)
}

// load verifies the stored checkpoint cp under the log's key and rebuilds the tree edge from
// the tables q reads, checked against it.
func (l *Log) load(ctx context.Context, q querier, cp []byte) error {
	c, err := tlog.OpenCheckpoint(cp, l.vkey)
	if err != nil {
		return fmt.Errorf("postgres: %w: stored checkpoint: %v", tlog.ErrCorrupt, err)
	}
	edge, err := loadEdge(ctx, q, c)
	if err != nil {
		return err
	}
	l.edge, l.cp = edge, cp
	return nil
}

// loadEdge reads the edge of the tree of the verified checkpoint c.
func loadEdge(ctx context.Context, q querier, c *tlog.Checkpoint) (*tlog.Edge, error) {
	// LoadEdge calls every failure corrupt; one of reading the database is not.
	var readErr error
	get := reader(q)
	edge, err := tlog.LoadEdge(ctx, func(ctx context.Context, p string) ([]byte, error) {
		b, err := get(ctx, p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) && readErr == nil {
			readErr = err
		}
		return b, err
	}, c)
	switch {
	case err != nil && readErr != nil:
		return nil, fmt.Errorf("postgres: %w: reading the tree: %v", tlog.ErrUnwritable, readErr)
	case err != nil:
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return edge, nil
}

// maxCatchUp bounds how many records of other replicas catchUp reads rather than reloading the
// tree edge from the tiles.
const maxCatchUp = 4 * tlog.TileWidth

// catchUp brings the edge up to the stored checkpoint cp of a tree of the given size. When this
// replica's edge is a little behind (other replicas appended), it appends their records to it
// and accepts the result only if it hashes to cp's signed root: one query instead of reading
// the partial tiles and bundle. When it is far behind, it loads the edge from the tiles and
// checks a consistency proof from its last checkpoint.
//
// The tree in the database must extend the last one this replica saw: a database restored from
// an older backup, or rewritten, would lose acknowledged records, and the replica refuses to
// append to it (ErrCorrupt) until it is restarted by someone who knows why.
func (l *Log) catchUp(ctx context.Context, q querier, cp []byte, size int64) error {
	c, err := tlog.OpenCheckpoint(cp, l.vkey)
	if err != nil {
		return fmt.Errorf("postgres: %w: stored checkpoint: %v", tlog.ErrCorrupt, err)
	}
	if c.Size != uint64(size) {
		return fmt.Errorf("postgres: %w: head size %d differs from its checkpoint's %d", tlog.ErrCorrupt, size, c.Size)
	}
	if l.edge == nil {
		return l.load(ctx, q, cp)
	}
	if c.Size < l.edge.Size() {
		return fmt.Errorf("postgres: %w: the log in the database has %d records, fewer than the %d this replica saw", tlog.ErrCorrupt, c.Size, l.edge.Size())
	}
	if c.Size == l.edge.Size() || c.Size-l.edge.Size() > maxCatchUp {
		old, err := tlog.OpenCheckpoint(l.cp, l.vkey)
		if err != nil {
			return fmt.Errorf("postgres: %v", err)
		}
		edge, err := loadEdge(ctx, q, c)
		if err != nil {
			return err
		}
		if err := tlog.Consistent(ctx, reader(q), old, c); err != nil {
			if errors.Is(err, tlog.ErrInconsistent) {
				return fmt.Errorf("postgres: %w: the log in the database does not extend the one this replica saw: %v", tlog.ErrCorrupt, err)
			}
			return fmt.Errorf("postgres: %w: %v", tlog.ErrUnwritable, err)
		}
		l.edge, l.cp = edge, cp
		return nil
	}
	from := int64(l.edge.Size())
	rows, err := q.Query(ctx, `SELECT idx, data FROM audit_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx`, from, size)
	if err != nil {
		return err
	}
	var entries [][]byte
	for rows.Next() {
		var (
			i int64
			e []byte
		)
		if err := rows.Scan(&i, &e); err != nil {
			rows.Close()
			return err
		}
		if i != from+int64(len(entries)) {
			break // a gap: reported below
		}
		entries = append(entries, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if int64(len(entries)) == size-from {
		edge, _, root, err := l.edge.Append(entries)
		if err == nil && bytes.Equal(root, c.Root) {
			l.edge, l.cp = edge, cp
			return nil
		}
	}
	return fmt.Errorf("postgres: %w: records %d to %d in the database do not extend the tree this replica saw to the stored checkpoint", tlog.ErrCorrupt, from, size-1)
}

// VerifierKey returns the note verifier key auditors use to check checkpoints.
func (l *Log) VerifierKey() string { return l.vkey }

// Origin returns the log's origin line.
func (l *Log) Origin() string { return l.signer.Name() }

// Handler serves the log read-only from the database at the C2SP tlog-tiles paths, like
// posix.Log.Handler: mount it with http.StripPrefix.
func (l *Log) Handler() http.Handler { return tlog.ReaderHandler(reader(l.rpool)) }

// Append writes r to the log and returns its index once the transaction holding it and a
// checkpoint covering it has committed. Concurrent calls share one transaction. An error means
// the record is not acknowledged (tlog.ErrUnwritable when the database failed). A cancelled
// ctx returns its error; the record may still be logged.
func (l *Log) Append(ctx context.Context, r *audit.Record) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	b, err := audit.MarshalForAppend(r, l.now)
	if err != nil {
		return 0, fmt.Errorf("postgres: %w", err)
	}
	return l.gc.Append(ctx, b)
}

// Close waits for pending appends to finish and closes the connections. Appends after Close
// fail with tlog.ErrClosed.
func (l *Log) Close() error {
	first := l.gc.Close()
	if first {
		l.pool.Close()
		l.rpool.Close()
	}
	return nil
}

// commit appends a batch in one transaction and returns the index of its first record.
func (l *Log) commit(entries [][]byte) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	first, err := l.commitTx(ctx, entries)
	if err != nil {
		// l.edge is still the edge of a committed tree (a prefix of the log if the COMMIT
		// went through unacknowledged): the next transaction catches up from it.
		if errors.Is(err, tlog.ErrCorrupt) || errors.Is(err, tlog.ErrUnwritable) {
			return 0, err
		}
		return 0, fmt.Errorf("postgres: %w: %v", tlog.ErrUnwritable, err)
	}
	return first, nil
}

func (l *Log) commitTx(ctx context.Context, entries [][]byte) (uint64, error) {
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	// The head row serializes every replica's appends.
	var (
		size int64
		cp   []byte
	)
	if err := tx.QueryRow(ctx, `SELECT size, checkpoint FROM audit_head FOR UPDATE`).Scan(&size, &cp); err != nil {
		return 0, err
	}
	if !bytes.Equal(cp, l.cp) {
		// Another replica appended since (or this one failed): catch up with its records, or
		// read the edge it left.
		if err := l.catchUp(ctx, tx, cp, size); err != nil {
			return 0, err
		}
	}
	if l.edge.Size() != uint64(size) {
		return 0, fmt.Errorf("postgres: %w: head size %d differs from its checkpoint's %d", tlog.ErrCorrupt, size, l.edge.Size())
	}
	idx := make([]int64, len(entries))
	for i := range entries {
		idx[i] = size + int64(i)
	}
	edge, tiles, root, err := l.edge.Append(entries)
	if err != nil {
		return 0, err
	}
	var (
		levels []int16
		tidx   []int64
		tdata  [][]byte
	)
	for _, t := range tiles {
		if t.Level < 0 {
			continue // entry bundles are built from audit_entries when served
		}
		levels = append(levels, int16(t.Level))
		tidx = append(tidx, int64(t.Index))
		tdata = append(tdata, t.Bytes())
	}
	newCP, err := tlog.SignCheckpoint(tlog.Checkpoint{Origin: l.signer.Name(), Size: edge.Size(), Root: root}, l.signer)
	if err != nil {
		return 0, err
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO audit_entries (idx, data) SELECT * FROM unnest($1::bigint[], $2::bytea[])`, idx, entries)
	b.Queue(`INSERT INTO audit_tiles (level, idx, data) SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])
		ON CONFLICT (level, idx) DO UPDATE SET data = excluded.data`, levels, tidx, tdata)
	b.Queue(`UPDATE audit_head SET size = $1, checkpoint = $2`, int64(edge.Size()), newCP)
	br := tx.SendBatch(ctx, b)
	want := []int64{int64(len(entries)), int64(len(tdata)), 1}
	for i := range want {
		tag, err := br.Exec()
		if err == nil && tag.RowsAffected() != want[i] {
			err = fmt.Errorf("statement %d of the append changed %d rows, want %d", i+1, tag.RowsAffected(), want[i])
		}
		if err != nil {
			br.Close()
			return 0, err
		}
	}
	if err := br.Close(); err != nil {
		return 0, err
	}
	if l.beforeCommit != nil {
		if err := l.beforeCommit(ctx, tx); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	l.edge, l.cp = edge, newCP
	return uint64(size), nil
}
