package snp_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/snp"
)

// Verify a report file offline, the way `trustctl evidence verify --tee snp --certs DIR --at TIME
// FILE` does: the file holds the report and, if the host supplied one, its certificate table;
// DIR holds whatever else is needed (vcek.der, crl.der, or the cache layout).
func Example_offline() {
	b, err := os.ReadFile("report.bin")
	if err != nil {
		fmt.Println(err)
		return
	}
	ev, err := snp.EvidenceFromFile(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	v, err := snp.New(snp.Options{CertsDir: "collateral", Revocation: snp.RevocationIfAvailable})
	if err != nil {
		fmt.Println(err)
		return
	}
	claims, err := v.Verify(context.Background(), ev, attest.Options{Now: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(claims.Measurement, claims.Platform["product"], claims.Debug)
}

// A verifier for trustd: certificates from the evidence, VCEKs and CRLs from AMD's KDS when
// missing, cached on disk; a CRL is required.
func ExampleNew() {
	v, err := snp.New(snp.Options{
		Getter:   &snp.HTTPGetter{},
		CacheDir: "/var/cache/medicus-trust/snp",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(v.TEE())
	// Output: sev-snp
}
