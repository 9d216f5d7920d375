package azure_test

import (
	"context"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure"
	"github.com/medicus-cloud/trust/attest/azure/azuretest"
	"github.com/medicus-cloud/trust/attest/snp"
	"github.com/medicus-cloud/trust/internal/benchratio"
)

// BenchmarkRatioAzureSNP compares a warm verification of Azure SEV-SNP evidence (quote made by
// swtpm) with a warm attest/snp verification of the same SNP report by the same SNP verifier:
// the cost of the HCL report, runtime data, RSA quote signature and PCR digest on top.
func BenchmarkRatioAzureSNP(b *testing.B) {
	e := newEnv(b)
	ev := e.evidence(b)
	sv, err := snp.New(snp.Options{Roots: e.fx.Roots, Revocation: snp.InsecureRevocationSkip})
	if err != nil {
		b.Fatal(err)
	}
	v := azure.NewSNP(sv)
	ctx := context.Background()
	opts := attest.Options{Now: azuretest.Now}
	hcl, err := azure.ParseHCLReport(ev.HCLReport)
	if err != nil {
		b.Fatal(err)
	}
	bare := &attest.Evidence{TEE: attest.SEVSNP, Report: hcl.HWReport, Collateral: map[string][]byte{"vcek.der": ev.VCEK}}
	az := func() error {
		_, err := v.VerifyEvidence(ctx, ev, nil, opts)
		return err
	}
	plain := func() error {
		_, err := sv.Verify(ctx, bare, opts)
		return err
	}
	for _, f := range []func() error{az, plain} {
		if err := f(); err != nil {
			b.Fatal(err)
		}
	}
	best := []float64{0, 0}
	for round := 0; round < 3; round++ {
		for i, f := range []func() error{az, plain} {
			if ns := benchratio.PerOp(b, f); best[i] == 0 || ns < best[i] {
				best[i] = ns
			}
		}
	}
	benchratio.Value(b, "azure-snp-verify-warm/snp-verify-warm", best[0]/best[1])
}
