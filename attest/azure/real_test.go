package azure_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure"
	"github.com/medicus-cloud/trust/attest/snp"
	"github.com/medicus-cloud/trust/attest/tdx"
)

// realTime is inside the validity of both captures' VCEK and PCK chains.
var realTime = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantErr(t *testing.T, err error, kind error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("verified; want %v at %s", kind, field)
	}
	var ae *attest.Error
	if !errors.As(err, &ae) || !errors.Is(err, kind) || ae.Field != field {
		t.Fatalf("got %v; want %v at field %q", err, kind, field)
	}
}

// TestRealSNP verifies a capture from an Azure SEV-SNP CVM (Milan) that the Confidential
// Containers attester wrote: AMD's chain (embedded ARK and ASK) to the VCEK to the SNP report,
// REPORT_DATA over the runtime data, the AK in it over the TPM quote, and the PCR digest. Only the
// CRL is missing (no network in tests). The quote's qualifying data is CoCo's test "challenge".
func TestRealSNP(t *testing.T) {
	sv, err := snp.New(snp.Options{Revocation: snp.RevocationIfAvailable})
	if err != nil {
		t.Fatal(err)
	}
	v := azure.NewSNP(sv)
	ev := &attest.Evidence{TEE: azure.SNP, Report: readFile(t, "coco-az-snp-vtpm-evidence-v1.json")}
	c, err := v.Verify(context.Background(), ev, attest.Options{Now: realTime})
	if err != nil {
		t.Fatal(err)
	}
	if c.TEE != azure.SNP || c.Platform["paravisor"] != "azure-hcl" || c.Platform["product"] != "Milan" || string(c.ReportData) != "challenge" {
		t.Errorf("claims %+v", c)
	}
	if len(c.Measurements) != 24 || c.Measurements["pcr17"].String() != "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff" {
		t.Errorf("pcrs %v", c.Measurements)
	}
	if c.Attributes["crl_checked"] != 0 || len(c.Config["vtpm_ak_sha256"]) != 32 {
		t.Errorf("claims %+v", c)
	}
	t.Logf("paravisor measurement %s", c.Measurement)
}

// TestRealTDX verifies a capture from an Azure TDX CVM: the TD quote to Intel's SGX root (no
// collateral, so TCB status "unknown"), the HCL's TD report against the quote, REPORT_DATA over
// the runtime data, the AK over the TPM quote, and the PCR digest.
func TestRealTDX(t *testing.T) {
	tv, err := tdx.New(tdx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v := azure.NewTDX(tv)
	ev := &attest.Evidence{TEE: azure.TDX, Report: readFile(t, "coco-az-tdx-vtpm-evidence-v1.json")}
	c, err := v.Verify(context.Background(), ev, attest.Options{Now: realTime})
	if err != nil {
		t.Fatal(err)
	}
	if c.TEE != azure.TDX || c.TCBStatus != "unknown" || c.Platform["paravisor"] != "azure-hcl" || string(c.ReportData) != "challenge" {
		t.Errorf("claims %+v", c)
	}
	if len(c.Measurements) != 24+6 {
		t.Errorf("measurements %v", c.Measurements)
	}
	t.Logf("paravisor MRTD %s", c.Measurement)
}
