package tdx_test

import (
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/attesttest"
	"github.com/medicus-cloud/trust/attest/tdx"
)

func TestConformance(t *testing.T) {
	f := fx(t)
	v := mustNew(t, tdx.Options{Root: f.PKI.Root})
	const (
		body   = 48                       // after the header
		mrtd   = body + 16 + 48 + 48 + 24 // TEE_TCB_SVN, MRSEAM, MRSIGNERSEAM, attributes
		rd     = body + 520               // REPORTDATA
		sigOff = body + 584 + 4           // after the body and the signature data length
	)
	attesttest.Run(t, attesttest.Subject{
		Verifier: v,
		Scheme:   &tdx.Scheme,
		Evidence: func(_ testing.TB, reportData [attest.ReportDataSize]byte) *attest.Evidence {
			s := f.DefaultSpec()
			s.Body.ReportData = reportData
			return &attest.Evidence{TEE: attest.TDX, Report: f.Quote(s)}
		},
		Options:   attest.Options{Now: f.Now},
		Signed:    []int{28, mrtd, mrtd + 47, rd, rd + 63},
		Signature: []int{sigOff, sigOff + 32, sigOff + 63},
	})
}
