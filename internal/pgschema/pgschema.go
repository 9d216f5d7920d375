// Package pgschema opens a connection pool for one of trustd's small PostgreSQL tables (the
// revocation list, the collateral high-water mark, the shared collateral, the collateral
// bundle) and creates the table if it is missing, once, even when replicas start together.
package pgschema

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Open connects to dsn with at most maxConns connections and runs schema (CREATE ... IF NOT
// EXISTS statements) in one transaction under a transaction-level advisory lock keyed by the
// schema's text: concurrent CREATE TABLE IF NOT EXISTS can fail on PostgreSQL's catalog, and a
// session-level lock taken through a pool may be released on another connection than it was
// taken on. name prefixes the errors.
func Open(ctx context.Context, name, dsn string, maxConns int32, schema string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%s: dsn: %w", name, err)
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := create(ctx, pool, schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%s: creating table: %w", name, err)
	}
	return pool, nil
}

func create(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, schema); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, schema); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
