package postgres_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/medicus-cloud/trust/audit/storage/postgres"
	"github.com/medicus-cloud/trust/audit/storage/postgres/pgtest"
	"github.com/medicus-cloud/trust/audit/tlog"
	"github.com/medicus-cloud/trust/audit/tlog/tlogtest"
)

// TestConformance runs tlog's suite on one server, each test in a database of its own.
func TestConformance(t *testing.T) {
	c := pgtest.Start(t)
	n := 0
	tlogtest.Run(t, func(t *testing.T) tlogtest.Driver {
		n++
		db := fmt.Sprintf("conformance_%d", n)
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, c.DSN())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
		dsn := strings.Replace(c.DSN(), "/postgres?", "/"+db+"?", 1)
		skey, _, err := postgres.GenerateKey(rand.Reader, tlog.DefaultOrigin)
		if err != nil {
			t.Fatal(err)
		}
		return tlogtest.Driver{
			Open: func(t *testing.T) tlog.Log {
				l, err := postgres.Open(ctx, postgres.Options{DSN: dsn, Key: skey, Timeout: 5 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				return l
			},
			// A crash of the server: only what was committed survives.
			Break:  func(t *testing.T) { c.Stop("immediate") },
			Repair: func(t *testing.T) { c.Start() },
		}
	})
}
