// Package pgstate keeps the policy store's rollback high-water mark (the highest bundle version
// ever loaded) in PostgreSQL, in one small table beside the audit log's, so that every replica
// and every restart sees it: a pod that starts on fresh storage cannot load an older bundle than
// any replica ever did.
//
// trustd's role needs SELECT, INSERT and UPDATE on the table once it exists (an owner role or
// the first Open creates it); no DELETE: deleting the row would reset the mark.
package pgstate

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medicus-cloud/trust/internal/pgschema"
	"github.com/medicus-cloud/trust/policies"
)

// Table is the table's name.
const Table = "policy_state"

// schemaLock is the pg_advisory_xact_lock key that serializes creating the table between
// replicas starting at once ("medpolst" in ASCII).
const schemaLock = 0x6d6564706f6c7374

// schema holds one row: the highest version and its bundle digest.
const schema = `CREATE TABLE IF NOT EXISTS ` + Table + ` (
	id         boolean PRIMARY KEY DEFAULT true CHECK (id),
	version    bigint NOT NULL CHECK (version >= 0),
	digest     bytea NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
)`

// Store is a policies.StateStore in PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
}

var _ policies.StateStore = (*Store)(nil)

// Open connects with dsn (the audit log's connection string) and creates the table if it is
// missing. Close releases the connections.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The DSN may hold a password: do not repeat it.
		return nil, errors.New("pgstate: the DSN does not parse as a PostgreSQL connection string")
	}
	if err := pgschema.CheckTLS(&cfg.ConnConfig.Config); err != nil {
		return nil, fmt.Errorf("pgstate: dsn: %w", err) // a forged answer could roll the policy back
	}
	// The mark is written before a bundle becomes active: it must be durable when we go on.
	switch v, set := cfg.ConnConfig.RuntimeParams["synchronous_commit"]; {
	case !set:
		cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	case v == "off":
		return nil, errors.New("pgstate: synchronous_commit=off in the DSN would let a crash forget the policy version")
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstate: %w", err)
	}
	s := &Store{pool: pool}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLock)); err != nil {
			return err
		}
		// A role without CREATE may still use a table made for it: only try when missing.
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, Table).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			_, err := tx.Exec(ctx, schema)
			return err
		}
		return nil
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstate: creating table %s: %w", Table, err)
	}
	return s, nil
}

// Close releases the connections.
func (s *Store) Close() error { s.pool.Close(); return nil }

// Load implements policies.StateStore.
func (s *Store) Load(ctx context.Context) (policies.State, error) {
	var (
		v int64
		d []byte
	)
	err := s.pool.QueryRow(ctx, `SELECT version, digest FROM `+Table+` WHERE id`).Scan(&v, &d)
	if errors.Is(err, pgx.ErrNoRows) {
		return policies.State{}, nil
	}
	if err != nil {
		return policies.State{}, fmt.Errorf("pgstate: %w", err)
	}
	if v < 0 {
		return policies.State{}, fmt.Errorf("pgstate: table %s is damaged (version %d)", Table, v)
	}
	return policies.State{Version: uint64(v), Digest: d}, nil
}

// Advance implements policies.StateStore: one statement raises the mark only if st is higher,
// so replicas racing each other can never lower it.
func (s *Store) Advance(ctx context.Context, st policies.State) (policies.State, error) {
	if st.Version > math.MaxInt64 {
		return policies.State{}, fmt.Errorf("pgstate: version %d does not fit the table", st.Version)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO `+Table+` (id, version, digest) VALUES (true, $1, $2)
		ON CONFLICT (id) DO UPDATE SET version = excluded.version, digest = excluded.digest, updated_at = now()
		WHERE `+Table+`.version < excluded.version`, int64(st.Version), st.Digest)
	if err != nil {
		return policies.State{}, fmt.Errorf("pgstate: %w", err)
	}
	return s.Load(ctx)
}

// String implements policies.StateStore.
func (s *Store) String() string { return "PostgreSQL table " + Table }
