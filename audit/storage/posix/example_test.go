package posix_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/auditor"
	"github.com/medicus-cloud/trust/audit/storage/posix"
)

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "audit-example")
	defer os.RemoveAll(dir)

	// trustd: open the log once, append one record per decision.
	l, err := posix.Open(ctx, posix.Options{Dir: dir})
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
	cp, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: auditor.Source{Log: dir, Key: vkey}})
	if err != nil {
		fmt.Println("log is bad:", err)
		return
	}
	fmt.Println("record", idx, "in", cp.Origin, "of size", cp.Size)
	// Output:
	// record 0 in medicus.cloud/trust/audit of size 1
}
