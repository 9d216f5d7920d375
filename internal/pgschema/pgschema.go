// Package pgschema opens a connection pool for one of trustd's small PostgreSQL tables (the
// revocation list, the collateral high-water mark, the shared collateral, the collateral
// bundle) and creates the table if it is missing, once, even when replicas start together.
package pgschema

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/medicus-cloud/trust/internal/loopback"
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
	if err := CheckTLS(&cfg.ConnConfig.Config); err != nil {
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

// CheckTLS refuses a connection to a host other than a Unix socket or a loopback address (every
// host the DSN lists, fallbacks included) unless it verifies the server's certificate
// (sslmode=verify-full or verify-ca). pgx's default, prefer, verifies nothing and falls back to
// plain text: whoever sits between trustd and the database could then acknowledge audit
// records that never reach it, or answer with a revocation list, consent registry or collateral
// of their own.
func CheckTLS(c *pgconn.Config) error {
	type hostTLS struct {
		host string
		tls  *tls.Config
	}
	hosts := []hostTLS{{c.Host, c.TLSConfig}}
	for _, f := range c.Fallbacks {
		hosts = append(hosts, hostTLS{f.Host, f.TLSConfig})
	}
	for _, h := range hosts {
		if strings.HasPrefix(h.host, "/") || loopback.Host(h.host) {
			continue
		}
		if h.tls == nil || h.tls.InsecureSkipVerify && h.tls.VerifyPeerCertificate == nil {
			return fmt.Errorf("host %q is not a loopback address: use sslmode=verify-full (and sslrootcert) so that the server is authenticated", h.host)
		}
	}
	return nil
}
