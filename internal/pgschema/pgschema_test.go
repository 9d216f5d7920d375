package pgschema_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/medicus-cloud/trust/audit/storage/postgres/pgtest"
	"github.com/medicus-cloud/trust/internal/pgschema"
)

// TestOpenConcurrently: replicas starting together all open the table, none fails on a race to
// create it, and the pools hold no advisory lock afterwards.
func TestOpenConcurrently(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Start(t)
	const schema = `CREATE TABLE IF NOT EXISTS trust_pgschema_test (id INT PRIMARY KEY);
CREATE INDEX IF NOT EXISTS trust_pgschema_test_idx ON trust_pgschema_test (id)`
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			pool, err := pgschema.Open(ctx, "test", pg.DSN(), 2, schema)
			if err != nil {
				errs <- err
				return
			}
			pool.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	pool, err := pgschema.Open(ctx, "test", pg.DSN(), 1, schema)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var locks int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'`).Scan(&locks); err != nil || locks != 0 {
		t.Fatalf("%d advisory locks held, %v", locks, err)
	}
	if _, err := pgschema.Open(ctx, "test", "postgres://nobody@127.0.0.1:1/none?connect_timeout=1", 1, schema); err == nil {
		t.Fatal("opened an unreachable database")
	}
}

// TestCheckTLS: every table trustd keeps in PostgreSQL (audit log, revocations, consent and
// break-glass state, collateral, the policy version) is as trustworthy as the connection: a
// host other than a Unix socket or loopback must verify the server's certificate.
func TestCheckTLS(t *testing.T) {
	for dsn, ok := range map[string]bool{
		"postgres://u@127.0.0.1/x?sslmode=disable":                      true,
		"postgres://u@localhost/x?sslmode=disable":                      true,
		"host=/run/postgresql user=u sslmode=disable":                   true,
		"postgres://u@db.example.invalid/x?sslmode=verify-full":         true,
		"postgres://u@db.example.invalid/x?sslmode=verify-ca":           true,
		"postgres://u@db.example.invalid/x":                             false,
		"postgres://u@db.example.invalid/x?sslmode=require":             false,
		"postgres://u@192.0.2.7/x?sslmode=disable":                      false,
		"postgres://u@127.0.0.1:1,db.example.invalid/x?sslmode=disable": false,
	} {
		cfg, err := pgconn.ParseConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := pgschema.CheckTLS(cfg); (err == nil) != ok {
			t.Errorf("%s: %v, want ok=%v", dsn, err, ok)
		}
	}
}
