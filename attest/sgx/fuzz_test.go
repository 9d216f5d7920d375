package sgx

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/sgx/sgxtest"
)

// fuzzSeeds are the committed quotes: sgxtest v3/v4/v5, debug and foreign-root quotes, and the
// real TDX quote (a DCAP quote of the neighbouring kind, with a real PCK chain).
func fuzzSeeds(f *testing.F) {
	names, _ := filepath.Glob("testdata/*.bin")
	names = append(names, "testdata/tdx_prod_quote_SPR_E4.dat")
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
}

func FuzzParseQuote(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseQuote(b)
		if err != nil {
			return
		}
		if len(q.Signature) != 64 || len(q.AttestationKey) != 64 || len(q.QEReport) != ReportBodySize ||
			len(q.QEReportSignature) != 64 || len(q.PCKChain) == 0 || len(q.Signed) < headerSize+ReportBodySize {
			t.Fatalf("parsed quote with wrong part sizes: sig %d ak %d qe %d qesig %d chain %d signed %d",
				len(q.Signature), len(q.AttestationKey), len(q.QEReport), len(q.QEReportSignature), len(q.PCKChain), len(q.Signed))
		}
	})
}

// FuzzVerify runs whole verifications (chain, signatures, collateral) on mutated quotes: none
// may panic, and whatever verifies must carry the header and enclave report of a committed good
// quote (other bytes, such as padding or the PEM chain's encoding, may vary).
func FuzzVerify(f *testing.F) {
	fuzzSeeds(f)
	v, err := New(Options{Root: fixtureRoot(f), CollateralDir: "testdata/collateral"})
	if err != nil {
		f.Fatal(err)
	}
	signed := map[string]bool{}
	// quote_debug.bin is authentic too: verification reports debug enclaves, it does not refuse them.
	for _, n := range []string{"quote_v3.bin", "quote_v4.bin", "quote_v5.bin", "quote_debug.bin"} {
		q, err := ParseQuote(readFixture(f, n))
		if err != nil {
			f.Fatal(err)
		}
		signed[string(q.Signed)] = true
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.SGX, Report: b}, attest.Options{Now: sgxtest.Now}); err != nil {
			return
		}
		q, err := ParseQuote(b)
		if err != nil || !signed[string(q.Signed)] {
			t.Fatalf("a quote with a header and body nobody signed verified: %x", b)
		}
	})
}
