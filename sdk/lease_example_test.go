package sdk_test

import (
	"context"
	"fmt"
	"log"
	"time"
)

func ExampleClient_SecretLeased() {
	addr, stop := devTrustd()
	defer stop()
	ctx := context.Background()
	c := newClient(ctx, addr)
	defer c.Close()

	// The lease says how long the workload may hold the secret: at most until its token
	// expires, earlier when the policy sets spec.lease. Fetch it again after that; the client
	// attests again on its own when it must.
	sec, lease, err := c.SecretLeased(ctx, "clinic/api-token")
	if err != nil {
		log.Fatal(err)
	}
	defer sec.Wipe()
	fmt.Println("secret bytes:", sec.Len())
	fmt.Println("lease within the token lifetime:", time.Until(lease) <= 5*time.Minute)
	// Output:
	// secret bytes: 13
	// lease within the token lifetime: true
}
