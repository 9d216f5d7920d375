package tdx_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/tdx"
)

// Offline verification as `trustctl evidence verify --tee tdx --collateral DIR --at TIME FILE`
// does it: no network, collateral from a directory written by `trustctl collateral fetch`, a
// fixed verification time.
func Example_offline() {
	b, err := os.ReadFile("testdata/tdx_prod_quote_SPR_E4.dat")
	if err != nil {
		fmt.Println(err)
		return
	}
	ev, err := tdx.EvidenceFromFile(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	v, err := tdx.New(tdx.Options{}) // add CollateralDir: dir to appraise the TCB
	if err != nil {
		fmt.Println(err)
		return
	}
	at := time.Date(2023, 7, 1, 0, 0, 0, 0, time.UTC)
	c, err := v.Verify(context.Background(), ev, attest.Options{Now: at})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.TEE, c.Platform["fmspc"], c.TCBStatus)
	// Output: tdx 50806f000000 unknown
}

// A trustd set-up: collateral from a PCCS, cached on disk until its nextUpdate.
func Example_online() {
	v, err := tdx.New(tdx.Options{
		PCSURL:   "https://pccs.example.internal:8081",
		CacheDir: "/var/cache/medicus-trust/intel",
	})
	fmt.Println(v.TEE(), err)
	// Output: tdx <nil>
}
