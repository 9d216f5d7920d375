package azure_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure"
	"github.com/medicus-cloud/trust/attest/snp"
)

// Verify the evidence that the Confidential Containers attester wrote on an Azure SEV-SNP CVM,
// offline: the VCEK it carries chains to AMD's embedded roots (no CRL at hand here).
func Example_offline() {
	doc, err := os.ReadFile("testdata/coco-az-snp-vtpm-evidence-v1.json")
	if err != nil {
		panic(err)
	}
	sv, err := snp.New(snp.Options{Revocation: snp.RevocationIfAvailable})
	if err != nil {
		panic(err)
	}
	v := azure.NewSNP(sv)
	c, err := v.Verify(context.Background(), &attest.Evidence{TEE: azure.SNP, Report: doc},
		attest.Options{Now: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		panic(err)
	}
	fmt.Println(c.TEE, c.Platform["paravisor"], c.Platform["product"])
	fmt.Printf("qualifying data %q\n", []byte(c.ReportData))
	fmt.Println("pcr4", c.Measurements["pcr4"])
	// A workload would have quoted over azure.QualifyingData(its binding); CoCo's test used
	// "challenge", so the binding check fails.
	fmt.Println(azure.CheckBinding(c, attest.ReportData([]byte("nonce"), nil, nil)) != nil)
	// Output:
	// azure-snp azure-hcl Milan
	// qualifying data "challenge"
	// pcr4 eee70c86ea856a27719a2127d6090f02e100e2947c16a0d6a355f7294382992f
	// true
}
