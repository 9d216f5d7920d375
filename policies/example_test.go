package policies_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/release"
)

// How trustd loads policies: a signed bundle directory, two of the security team's keys, a state
// file against rollback, and a watcher that swaps in new bundles without a restart. The Store is
// the service's PolicySource (it has Current() *policies.Bundle).
func ExampleOpenStore() {
	pemKeys, err := os.ReadFile("/etc/trustd/policy-keys.pem")
	if err != nil {
		panic(err)
	}
	keys, err := policies.ParseTrustKeys(pemKeys)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	store, err := policies.OpenStore(ctx, policies.StoreOptions{
		Dir:       "/etc/trustd/policies",
		Keys:      keys,
		Threshold: 2,
		StateFile: "/var/lib/trustd/policy-state.json",
		OnReload: func(b *policies.Bundle, err error) {
			// log: err names the file and the reason; b is the bundle still active
		},
	})
	if err != nil {
		panic(err) // refuse to start without a good bundle
	}
	go store.Watch(ctx, 30*time.Second)
	_ = store.Current()
}

// How a release call checks a grant and its context constraints. The token names the policy
// that allowed the workload; the current bundle decides.
func ExampleBundle_CheckContext() {
	b, err := policies.Load("examples")
	if err != nil {
		panic(err)
	}
	tokenPolicy := "teleconsult" // token.Claims.Policy
	err = b.CheckContext(tokenPolicy, release.GrantDataKey, "teleconsult/recordings", kms.Context{"tenant": "praxis-verbund"})
	var d *policies.Denial
	if errors.As(err, &d) { // the service answers PermissionDenied
		fmt.Println(d.Claim, d.Seen)
	}
	// Output: context.tenant "praxis-verbund"
}
