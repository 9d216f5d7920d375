package revoke

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medicus-cloud/trust/internal/pgschema"
)

// PGStore keeps revocations in PostgreSQL, in the database the audit log uses, so that every
// replica reads the same list.
type PGStore struct {
	pool *pgxpool.Pool
}

const pgSchema = `CREATE TABLE IF NOT EXISTS trust_revocations (
	seq     BIGSERIAL PRIMARY KEY,
	id      TEXT NOT NULL UNIQUE,
	body    JSONB NOT NULL,
	created TIMESTAMPTZ NOT NULL DEFAULT now()
)`

// OpenPG connects to dsn and creates the table if needed.
func OpenPG(ctx context.Context, dsn string) (*PGStore, error) {
	pool, err := pgschema.Open(ctx, "revoke", dsn, 2, pgSchema)
	if err != nil {
		return nil, err
	}
	return &PGStore{pool: pool}, nil
}

// Close closes the pool.
func (p *PGStore) Close() error { p.pool.Close(); return nil }

// Add implements Store.
func (p *PGStore) Add(ctx context.Context, r Revocation) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = p.pool.Exec(ctx, `INSERT INTO trust_revocations (id, body) VALUES ($1, $2)`, r.ID, b)
	return err
}

// List implements Store.
func (p *PGStore) List(ctx context.Context) ([]Revocation, error) {
	rows, err := p.pool.Query(ctx, `SELECT body FROM trust_revocations ORDER BY seq`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Revocation
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		var r Revocation
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("revocation row: %w", err)
		}
		if err := r.Normalize(); err != nil {
			return nil, fmt.Errorf("revocation row %s: %w", r.ID, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
