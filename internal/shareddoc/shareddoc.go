// Package shareddoc keeps one small JSON document of trustd's admin state (the consent
// registry, the two-person requests; the revocation file uses File) where every replica reads
// and changes the same copy: a private file in the data
// directory for a single trustd or replicas sharing that directory, or a row in the audit
// log's PostgreSQL database. Changes are read-modify-write under an exclusive lock (flock on
// the file, a row lock in PostgreSQL), so that two replicas changing the document at once both
// keep their change.
package shareddoc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medicus-cloud/trust/internal/atomicfile"
	"github.com/medicus-cloud/trust/internal/pgschema"
)

// MaxSize bounds a document.
const MaxSize = 16 << 20

// File keeps the document in a private file (0600), replaced atomically and durably. Update
// takes an flock on Path+".lock": processes sharing the directory take turns.
//
// File and PG have the same two methods: Read returns the document (nil when there is none
// yet); Update passes the current document (nil when none) to f under an exclusive lock and,
// unless f fails, stores what f returns durably before the lock is released.
type File struct {
	Path string
	mu   sync.Mutex // for builds without flock; with it, every Update opens the lock anew and flock excludes the others
}

// Read returns the document.
func (f *File) Read(context.Context) ([]byte, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s: %d bytes, at most %d", f.Path, len(b), MaxSize)
	}
	return b, nil
}

// Update changes the document under the lock.
func (f *File) Update(ctx context.Context, fn func(cur []byte) ([]byte, error)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
		return err
	}
	unlock, err := lockFile(f.Path + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := f.Read(ctx)
	if err != nil {
		return err
	}
	next, err := fn(cur)
	if err != nil {
		return err
	}
	if len(next) > MaxSize {
		return fmt.Errorf("%s: %d bytes, at most %d", f.Path, len(next), MaxSize)
	}
	return atomicfile.WriteFile(f.Path, next, 0o600)
}

// PG keeps documents in the table trust_admin_state, one row per name.
type PG struct {
	pool *pgxpool.Pool
	name string
}

const pgSchema = `CREATE TABLE IF NOT EXISTS trust_admin_state (
	name    TEXT PRIMARY KEY,
	doc     BYTEA NOT NULL,
	updated TIMESTAMPTZ NOT NULL DEFAULT now()
)`

// OpenPG connects to dsn for the document name and creates the table if needed.
func OpenPG(ctx context.Context, dsn, name string) (*PG, error) {
	pool, err := pgschema.Open(ctx, "admin state", dsn, 2, pgSchema)
	if err != nil {
		return nil, err
	}
	return &PG{pool: pool, name: name}, nil
}

// Close closes the pool.
func (p *PG) Close() error { p.pool.Close(); return nil }

// Read returns the document.
func (p *PG) Read(ctx context.Context) ([]byte, error) {
	var b []byte
	err := p.pool.QueryRow(ctx, `SELECT doc FROM trust_admin_state WHERE name = $1`, p.name).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("admin state %s: %w", p.name, err)
	}
	return b, nil
}

// Update changes the document under the lock.
func (p *PG) Update(ctx context.Context, fn func(cur []byte) ([]byte, error)) error {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("admin state %s: %w", p.name, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The row exists from the first change on, so that FOR UPDATE has something to lock.
	if _, err := tx.Exec(ctx, `INSERT INTO trust_admin_state (name, doc) VALUES ($1, '') ON CONFLICT (name) DO NOTHING`, p.name); err != nil {
		return fmt.Errorf("admin state %s: %w", p.name, err)
	}
	var cur []byte
	if err := tx.QueryRow(ctx, `SELECT doc FROM trust_admin_state WHERE name = $1 FOR UPDATE`, p.name).Scan(&cur); err != nil {
		return fmt.Errorf("admin state %s: %w", p.name, err)
	}
	if len(cur) == 0 {
		cur = nil
	}
	next, err := fn(cur)
	if err != nil {
		return err
	}
	if len(next) > MaxSize {
		return fmt.Errorf("admin state %s: %d bytes, at most %d", p.name, len(next), MaxSize)
	}
	if _, err := tx.Exec(ctx, `UPDATE trust_admin_state SET doc = $2, updated = now() WHERE name = $1`, p.name, next); err != nil {
		return fmt.Errorf("admin state %s: %w", p.name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("admin state %s: %w", p.name, err)
	}
	return nil
}
