package postgres_test

import (
	"context"
	"log"
	"net/http"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/storage/postgres"
)

// Each replica opens the shared log with the shared key, appends, and serves the log read-only
// for auditors (trustctl audit verify --log https://trust.example/audit/ --key ...).
func ExampleOpen() {
	ctx := context.Background()
	o, err := postgres.Config{DSNFile: "/etc/medicus/audit-dsn", KeyFile: "/etc/medicus/audit-note.key"}.Options()
	if err != nil {
		log.Fatal(err)
	}
	l, err := postgres.Open(ctx, o)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	http.Handle("/audit/", http.StripPrefix("/audit", l.Handler()))
	if _, err := l.Append(ctx, &audit.Record{Event: audit.EventAttest, Verdict: audit.VerdictDeny}); err != nil {
		// Nothing is released without its record.
		log.Fatal(err)
	}
}
