package azure_test

import (
	"context"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/attesttest"
	"github.com/medicus-cloud/trust/attest/azure"
	"github.com/medicus-cloud/trust/attest/azure/azuretest"
)

// TestConformance runs the verifier conformance suite on Azure SEV-SNP evidence that the guest
// provider made on swtpm (HCL report under the fixture's AMD roots). The evidence is JSON, so the
// suite's bit flips land in its text: each chosen offset is a base64 or hex character that stays
// one after the flip, which Evidence makes sure of by quoting again when the fresh quote puts
// another character there.
func TestConformance(t *testing.T) {
	vm := azuretest.NewSNPVM(t)
	v := azure.NewSNP(vm.Verifier(t))
	quote := func(t testing.TB, rd [attest.ReportDataSize]byte) *attest.Evidence {
		ev, err := vm.Provider.Evidence(context.Background(), rd)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	doc := string(quote(t, [64]byte{}).Report)
	field := func(prefix string, char int) int {
		i := strings.Index(doc, prefix)
		if i < 0 {
			t.Fatalf("no %q in %s", prefix, doc)
		}
		return i + len(prefix) + char
	}
	flipSafe := func(c byte) bool {
		ok := func(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
		return ok(c) && ok(c^1)
	}
	// b64 picks, in the base64 field after prefix, a character covering only signed bytes in
	// [from, to) (character 4g holds the top six bits of byte 3g) that survives a flip here.
	b64 := func(prefix string, from, to int) int {
		for g := (from + 2) / 3; 3*g < to; g++ {
			if off := field(prefix, 4*g); flipSafe(doc[off]) {
				return off
			}
		}
		t.Fatalf("no flippable character in %s[%d:%d]", prefix, from, to)
		return 0
	}
	signed := []int{
		b64(`"hcl_report": "`, 32+0x90, 32+0xc0), // the SNP report's MEASUREMENT
		b64(`"hcl_report": "`, 32+0x50, 32+0x70), // its REPORT_DATA (the runtime data's hash)
		b64(`"attest": "`, 44, 76),               // TPMS_ATTEST extraData (the binding)
		field(`"0": "`, 0),                       // PCR 0, whose hash the quote signed
	}
	sig := []int{b64(`"signature": "`, 6, 262)} // TPMT_SIGNATURE: the RSASSA signature
	attesttest.Run(t, attesttest.Subject{
		Verifier: v,
		Scheme:   &azure.SNPScheme,
		Evidence: func(t testing.TB, rd [attest.ReportDataSize]byte) *attest.Evidence {
			for range 100 {
				ev := quote(t, rd)
				safe := true
				for _, off := range append(append([]int{}, signed...), sig...) {
					safe = safe && flipSafe(ev.Report[off])
				}
				if safe {
					return ev
				}
			}
			t.Fatal("no quote whose chosen characters survive a bit flip")
			return nil
		},
		Options:    attest.Options{Now: azuretest.Now},
		Signed:     signed,
		Signature:  sig,
		MutateRuns: 100,
	})
}
