package sim_test

import (
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/attesttest"
	"github.com/medicus-cloud/trust/attest/sim"
)

func TestConformance(t *testing.T) {
	attesttest.Run(t, attesttest.Subject{
		Verifier: sim.NewInsecureVerifier(),
		Scheme:   &sim.Scheme,
		Evidence: func(_ testing.TB, rd [attest.ReportDataSize]byte) *attest.Evidence {
			r := &sim.Report{SVN: 2, ReportData: rd}
			r.Measurement[0] = 0xab
			return &attest.Evidence{TEE: attest.InsecureSimulated, Report: r.Sign(sim.InsecureKey())}
		},
		Signed:    []int{12, 16, 16 + sim.MeasurementSize, 16 + sim.MeasurementSize + sim.HostDataSize + 63},
		Signature: []int{sim.ReportSize - 64, sim.ReportSize - 1},
	})
}
