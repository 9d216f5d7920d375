package audit_test

import (
	"fmt"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/kms"
)

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
