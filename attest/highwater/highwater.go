// Package highwater keeps the monotonic marks of collateral versions (issue 16) that replicas
// share, so that no replica accepts collateral (an AMD CRL, an Intel TCB info) older than the
// newest any replica has accepted: in memory for one process, or in PostgreSQL for a fleet.
package highwater

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medicus-cloud/trust/internal/pgschema"

	"github.com/medicus-cloud/trust/attest"
)

// mark is one key's newest version.
type mark struct {
	issued time.Time
	number int64
}

// older reports whether (issued, number) is older than m; a number of -1 is unknown.
func (m mark) older(issued time.Time, number int64) bool {
	return issued.Before(m.issued) || number >= 0 && m.number >= 0 && number < m.number
}

func errOlder(key string, issued time.Time, number int64, m mark) error {
	return fmt.Errorf("%w: %s issued %s (number %d), another replica accepted %s (number %d)", attest.ErrOlderCollateral,
		key, issued.UTC().Format(time.RFC3339), number, m.issued.UTC().Format(time.RFC3339), m.number)
}

// Mem is an in-process attest.HighWater. The zero value is ready.
type Mem struct {
	mu sync.Mutex
	m  map[string]mark
}

var _ attest.HighWater = (*Mem)(nil)

// Advance implements attest.HighWater.
func (h *Mem) Advance(_ context.Context, key string, issued time.Time, number int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]mark{}
	}
	m, ok := h.m[key]
	if ok && m.older(issued, number) {
		return errOlder(key, issued, number, m)
	}
	if !ok || issued.After(m.issued) {
		m.issued = issued
	}
	if !ok || number > m.number {
		m.number = number
	}
	h.m[key] = m
	return nil
}

// PG is an attest.HighWater in PostgreSQL (the audit log's database), shared by replicas.
type PG struct {
	pool *pgxpool.Pool
}

var _ attest.HighWater = (*PG)(nil)

const pgSchema = `CREATE TABLE IF NOT EXISTS trust_collateral_high_water (
	key     TEXT PRIMARY KEY,
	issued  TIMESTAMPTZ NOT NULL,
	number  BIGINT NOT NULL,
	updated TIMESTAMPTZ NOT NULL DEFAULT now()
)`

// OpenPG connects to dsn and creates the table if needed.
func OpenPG(ctx context.Context, dsn string) (*PG, error) {
	pool, err := pgschema.Open(ctx, "highwater", dsn, 2, pgSchema)
	if err != nil {
		return nil, err
	}
	return &PG{pool: pool}, nil
}

// Close closes the pool.
func (p *PG) Close() error { p.pool.Close(); return nil }

// Advance implements attest.HighWater in one statement: the row only moves forward, and what it
// held before tells whether (issued, number) is older.
func (p *PG) Advance(ctx context.Context, key string, issued time.Time, number int64) error {
	var prevIssued *time.Time
	var prevNumber *int64
	err := p.pool.QueryRow(ctx, `WITH old AS (SELECT issued, number FROM trust_collateral_high_water WHERE key = $1 FOR UPDATE),
up AS (INSERT INTO trust_collateral_high_water (key, issued, number) VALUES ($1, $2, $3)
	ON CONFLICT (key) DO UPDATE SET issued = GREATEST(trust_collateral_high_water.issued, EXCLUDED.issued),
		number = GREATEST(trust_collateral_high_water.number, EXCLUDED.number), updated = now())
SELECT (SELECT issued FROM old), (SELECT number FROM old)`, key, issued.UTC(), number).Scan(&prevIssued, &prevNumber)
	if err != nil {
		return fmt.Errorf("highwater: %w", err)
	}
	if prevIssued == nil || prevNumber == nil {
		return nil
	}
	if m := (mark{issued: *prevIssued, number: *prevNumber}); m.older(issued, number) {
		return errOlder(key, issued, number, m)
	}
	return nil
}
