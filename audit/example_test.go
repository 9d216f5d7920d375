package audit_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/medicus-cloud/trust/audit"
)

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "audit-example")
	defer os.RemoveAll(dir)

	// trustd: open the log once, append one record per decision.
	l, err := audit.OpenLocal(ctx, audit.LocalOptions{Dir: dir})
	if err != nil {
		panic(err)
	}
	idx, err := l.Append(ctx, &audit.Record{
		Time: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC), RequestID: "r-1",
		Event: audit.EventGetSecret, TEE: "tdx", Verdict: audit.VerdictAllow, Names: []string{"secret:db"},
	})
	if err != nil {
		panic(err) // nothing may be released: answer Unavailable
	}
	vkey := l.VerifierKey() // publish this for auditors
	l.Close()

	// An auditor, with a copy of the log (or its URL) and the verifier key.
	if _, err := audit.Verify(ctx, os.Stdout, audit.VerifyOptions{Source: audit.Source{Log: dir, Key: vkey}}); err != nil {
		fmt.Println("log is bad:", err)
	}
	fmt.Println("record", idx)
	// Output:
	// ok: medicus.cloud/trust/audit size 1 root wGTrfL/0nKzwau/uG0GkC5hAENsA4VDjLWRGmuDpwLU=: signature, 1 records and all tiles verified
	// record 0
}
