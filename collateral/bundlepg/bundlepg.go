// Package bundlepg shares the imported collateral bundle among trustd replicas through the audit
// log's PostgreSQL database: one row, only ever advanced by issue time. What it stores is the
// signed bundle file; every replica verifies it under its own operator keys before use, so the
// database is trusted for availability only.
package bundlepg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medicus-cloud/trust/internal/pgschema"

	"github.com/medicus-cloud/trust/collateral"
)

// Stored is the bundle in the database.
type Stored struct {
	Issued time.Time
	Digest string // SHA-256 of Data, lowercase hex
	KeyID  string
	Data   []byte
}

// Store is the shared bundle row.
type Store struct {
	pool *pgxpool.Pool
}

const schema = `CREATE TABLE IF NOT EXISTS trust_collateral_bundle (
	id      INT PRIMARY KEY CHECK (id = 1),
	issued  TIMESTAMPTZ NOT NULL,
	digest  TEXT NOT NULL,
	kid     TEXT NOT NULL,
	bundle  BYTEA NOT NULL,
	updated TIMESTAMPTZ NOT NULL DEFAULT now()
)`

// Open connects to dsn and creates the table if needed.
func Open(ctx context.Context, dsn string) (*Store, error) {
	pool, err := pgschema.Open(ctx, "bundlepg", dsn, 2, schema)
	if err != nil {
		return nil, err
	}
	return &Store{pool: pool}, nil
}

// Close closes the pool.
func (s *Store) Close() error { s.pool.Close(); return nil }

// Put stores b unless the row holds a bundle issued after it, or at the same time with another
// digest (collateral.ErrOlder). Storing the bundle the row holds already is a no-op.
func (s *Store) Put(ctx context.Context, b Stored) error {
	var prevIssued *time.Time
	var prevDigest *string
	err := s.pool.QueryRow(ctx, `WITH old AS (SELECT issued, digest FROM trust_collateral_bundle WHERE id = 1 FOR UPDATE),
up AS (INSERT INTO trust_collateral_bundle (id, issued, digest, kid, bundle) VALUES (1, $1, $2, $3, $4)
	ON CONFLICT (id) DO UPDATE SET issued = EXCLUDED.issued, digest = EXCLUDED.digest, kid = EXCLUDED.kid,
		bundle = EXCLUDED.bundle, updated = now()
	WHERE trust_collateral_bundle.issued < EXCLUDED.issued)
SELECT (SELECT issued FROM old), (SELECT digest FROM old)`, b.Issued.UTC(), b.Digest, b.KeyID, b.Data).Scan(&prevIssued, &prevDigest)
	if err != nil {
		return fmt.Errorf("bundlepg: %w", err)
	}
	switch {
	case prevIssued == nil:
		return nil
	case b.Issued.Before(*prevIssued):
		return fmt.Errorf("%w: issued %s, another replica imported one issued %s", collateral.ErrOlder,
			b.Issued.UTC().Format(time.RFC3339), prevIssued.UTC().Format(time.RFC3339))
	case b.Issued.Equal(*prevIssued) && *prevDigest != b.Digest:
		return fmt.Errorf("%w: another replica imported another bundle with the same issue time %s", collateral.ErrOlder,
			b.Issued.UTC().Format(time.RFC3339))
	}
	return nil
}

// Latest returns the stored bundle when its digest is not have (the caller's); nil when the
// row is empty or holds have.
func (s *Store) Latest(ctx context.Context, have string) (*Stored, error) {
	var b Stored
	err := s.pool.QueryRow(ctx, `SELECT issued, digest, kid, CASE WHEN digest = $1 THEN NULL ELSE bundle END
FROM trust_collateral_bundle WHERE id = 1`, have).Scan(&b.Issued, &b.Digest, &b.KeyID, &b.Data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bundlepg: %w", err)
	}
	if b.Digest == have {
		return nil, nil
	}
	if len(b.Data) > collateral.MaxBundleSize {
		return nil, fmt.Errorf("bundlepg: stored bundle of %d bytes, limit %d", len(b.Data), collateral.MaxBundleSize)
	}
	b.Issued = b.Issued.UTC()
	return &b, nil
}
