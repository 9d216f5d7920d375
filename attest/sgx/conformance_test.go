package sgx_test

import (
	"fmt"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/attesttest"
	"github.com/medicus-cloud/trust/attest/sgx"
	"github.com/medicus-cloud/trust/attest/sgx/sgxtest"
)

func TestConformance(t *testing.T) {
	p := sgxtest.NewPlatform(t)
	v, err := sgx.New(sgx.Options{Root: p.Root})
	if err != nil {
		t.Fatal(err)
	}
	const (
		body      = 48         // after the header
		mrenclave = body + 64  // MRENCLAVE
		rd        = body + 320 // REPORTDATA
		sigOff    = body + sgx.ReportBodySize + 4
	)
	for _, version := range []uint16{3, 4, 5} {
		off := 0
		if version == 5 {
			off = 6 // the body descriptor
		}
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			attesttest.Run(t, attesttest.Subject{
				Verifier: v,
				Scheme:   &sgx.Scheme,
				Evidence: func(t testing.TB, reportData [attest.ReportDataSize]byte) *attest.Evidence {
					return &attest.Evidence{TEE: attest.SGX, Report: p.Quote(t, sgxtest.DefaultEnclave(), reportData, sgxtest.QuoteOptions{Version: version})}
				},
				Signed:     []int{28, off + mrenclave, off + mrenclave + 31, off + rd, off + rd + 63},
				Signature:  []int{off + sigOff, off + sigOff + 32, off + sigOff + 63},
				MutateRuns: 100,
			})
		})
	}
}
