package ego_test

import (
	"context"
	"fmt"

	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/ego"
	"github.com/medicus-cloud/trust/sdk"
)

// An SGX workload built with `ego-go build -tags ego` picks the EGo provider when it runs in an
// enclave, and otherwise falls back to what else the machine offers.
func ExampleDetect() {
	var p enclave.Provider
	if egoProvider, ok := ego.Detect(); ok {
		p = egoProvider
	} else {
		fmt.Println("not in an EGo enclave")
		return
	}
	c, err := sdk.New(context.Background(), sdk.Options{Addr: "trustd.medicus.internal:7443", Provider: p})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	// Output: not in an EGo enclave
}
