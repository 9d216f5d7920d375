package snp_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/attesttest"
	"github.com/medicus-cloud/trust/attest/snp"
	"github.com/medicus-cloud/trust/attest/snp/snptest"
)

func TestConformance(t *testing.T) {
	for _, product := range []string{snptest.Milan, snptest.Genoa, snptest.Turin} {
		t.Run(product, func(t *testing.T) {
			f := snptest.New(t, product, snptest.Options{})
			s := f.Signer
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "crl-vcek.der"), f.CRL(t, snptest.T0, 365*24*time.Hour), 0o600); err != nil {
				t.Fatal(err)
			}
			v, err := snp.New(snp.Options{CertsDir: dir, Roots: map[string]*snp.Roots{product: {Product: product, ARK: s.Ark, ASK: s.Ask, ASVK: s.Asvk}}})
			if err != nil {
				t.Fatal(err)
			}
			attesttest.Run(t, attesttest.Subject{
				Verifier: v,
				Scheme:   &snp.Scheme,
				Evidence: func(t testing.TB, rd [attest.ReportDataSize]byte) *attest.Evidence {
					return &attest.Evidence{TEE: attest.SEVSNP, Report: f.Report(t, snptest.ReportSpec{ReportData: rd}),
						Certificates: f.Table(t)}
				},
				Options: attest.Options{Now: snptest.TVerify},
				// REPORT_DATA, MEASUREMENT, HOST_DATA, FAMILY_ID; the signature's R and S.
				Signed:    []int{0x50, 0x8f, 0x90, 0xbf, 0xc0, 0x10},
				Signature: []int{0x2a0, 0x2e8},
			})
		})
	}
}
