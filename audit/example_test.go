package audit_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/kms"
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

// An auditor who holds one tenant's context key checks a release's context against the
// record's digest, offline.
func ExampleTenantKey_Check() {
	deployment, _ := audit.NewContextKey(make([]byte, audit.ContextKeySize)) // from audit.context_key_file
	tenant := deployment.Tenant("uk-freiburg")                               // handed to that tenant's auditor

	canon, _ := kms.Context{"tenant": "uk-freiburg", "case": "c-1042"}.Canonical()
	digest := deployment.Digest("uk-freiburg", canon) // what trustd writes as context_digest

	other, _ := kms.Context{"tenant": "uk-freiburg", "case": "c-1043"}.Canonical()
	fmt.Println(tenant.Check(digest, canon), tenant.Check(digest, other))
	// Output: true false
}
