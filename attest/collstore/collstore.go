// Package collstore shares fetched TEE collateral (Intel PCS sets, AMD CRLs) between trustd
// replicas through PostgreSQL (issue 16), so that a fleet fetches each set once per refresh
// interval instead of once per replica, and one replica fetches while the others wait.
//
// The store is an optimization and a sharing channel, not a source of trust: every verifier
// verifies what it loads (signature to the vendor's root, validity, the high-water mark) exactly
// as what it fetched, and a tampered or older row only makes it fetch itself. A failed read or
// write is reported through Options.OnError and the verifier falls back to its own fetch.
package collstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medicus-cloud/trust/internal/pgschema"

	"github.com/medicus-cloud/trust/attest"
)

// MaxRow bounds one key's stored files (Intel's largest sets are a few hundred KiB).
const MaxRow = 8 << 20

// Options configure a PG store.
type Options struct {
	// OnError, if set, learns each failed operation ("load", "store", "lease", "release") for
	// logs and metrics. It must not block.
	OnError func(op, key string, err error)
}

// PG is an attest.CollateralStore and attest.CollateralLeaser in PostgreSQL (the audit log's
// database), in the table trust_collateral.
type PG struct {
	pool *pgxpool.Pool
	o    Options
}

var (
	_ attest.CollateralStore  = (*PG)(nil)
	_ attest.CollateralLeaser = (*PG)(nil)
)

// files is NULL until the first Store (a lease may create the row); lease_owner names the
// replica's lease, so that a late release never frees another replica's.
const pgSchema = `CREATE TABLE IF NOT EXISTS trust_collateral (
	key         TEXT PRIMARY KEY,
	files       BYTEA,
	fetched_at  TIMESTAMPTZ,
	lease_until TIMESTAMPTZ,
	lease_owner TEXT,
	updated     TIMESTAMPTZ NOT NULL DEFAULT now()
)`

// OpenPG connects to dsn and creates the table if needed.
func OpenPG(ctx context.Context, dsn string, o Options) (*PG, error) {
	pool, err := pgschema.Open(ctx, "collstore", dsn, 4, pgSchema)
	if err != nil {
		return nil, err
	}
	return &PG{pool: pool, o: o}, nil
}

// Close closes the pool.
func (p *PG) Close() error { p.pool.Close(); return nil }

func (p *PG) fail(op, key string, err error) error {
	err = fmt.Errorf("collstore: %s %s: %w", op, key, err)
	if p.o.OnError != nil {
		p.o.OnError(op, key, err)
	}
	return err
}

// Load implements attest.CollateralStore.
func (p *PG) Load(ctx context.Context, key string) (map[string][]byte, time.Time, error) {
	var b []byte
	var at time.Time
	err := p.pool.QueryRow(ctx, `SELECT files, fetched_at FROM trust_collateral WHERE key = $1 AND files IS NOT NULL AND octet_length(files) <= $2`,
		key, MaxRow).Scan(&b, &at)
	if err == pgx.ErrNoRows {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, p.fail("load", key, err)
	}
	files, err := decode(b)
	if err != nil {
		return nil, time.Time{}, p.fail("load", key, err)
	}
	return files, at, nil
}

// Store implements attest.CollateralStore: the row is replaced only by a set fetched later.
func (p *PG) Store(ctx context.Context, key string, files map[string][]byte, fetchedAt time.Time) error {
	b, err := json.Marshal(files) // sorted keys: the same files give the same bytes
	if err != nil {
		return p.fail("store", key, err)
	}
	if len(b) > MaxRow {
		return p.fail("store", key, fmt.Errorf("%d bytes, limit %d", len(b), MaxRow))
	}
	_, err = p.pool.Exec(ctx, `INSERT INTO trust_collateral (key, files, fetched_at) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE SET files = EXCLUDED.files, fetched_at = EXCLUDED.fetched_at, updated = now()
	WHERE trust_collateral.fetched_at IS NULL OR trust_collateral.fetched_at < EXCLUDED.fetched_at`, key, b, fetchedAt.UTC())
	if err != nil {
		return p.fail("store", key, err)
	}
	return nil
}

// Lease implements attest.CollateralLeaser on the database's clock: the row's lease is taken
// when it is free or expired.
func (p *PG) Lease(ctx context.Context, key string, ttl time.Duration) (func(), bool, error) {
	var tok [16]byte
	rand.Read(tok[:])
	owner := hex.EncodeToString(tok[:])
	tag, err := p.pool.Exec(ctx, `INSERT INTO trust_collateral (key, lease_until, lease_owner) VALUES ($1, now() + $2 * interval '1 millisecond', $3)
ON CONFLICT (key) DO UPDATE SET lease_until = EXCLUDED.lease_until, lease_owner = EXCLUDED.lease_owner
	WHERE trust_collateral.lease_until IS NULL OR trust_collateral.lease_until < now()`, key, ttl.Milliseconds(), owner)
	if err != nil {
		return func() {}, false, p.fail("lease", key, err)
	}
	if tag.RowsAffected() == 0 {
		return func() {}, false, nil
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := p.pool.Exec(ctx, `UPDATE trust_collateral SET lease_until = NULL, lease_owner = NULL WHERE key = $1 AND lease_owner = $2`, key, owner); err != nil {
			p.fail("release", key, err) // the lease expires on its own
		}
	}, true, nil
}

func decode(b []byte) (map[string][]byte, error) {
	var files map[string][]byte
	if err := json.Unmarshal(b, &files); err != nil {
		return nil, fmt.Errorf("stored files: %w", err)
	}
	if files == nil {
		return nil, fmt.Errorf("stored files: none")
	}
	return files, nil
}
