package policies

import (
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest"
)

// TestMeasurementRules: a measurement must have the length of a TEE the policy lists, as the
// schemes declare it (SGX MRENCLAVE 32 bytes, SNP MEASUREMENT and TDX MRTD 48).
func TestMeasurementRules(t *testing.T) {
	m32, m48 := make([]byte, 32), make([]byte, 48)
	for _, tc := range []struct {
		tees []attest.TEE
		m    []byte
		err  string
	}{
		{[]attest.TEE{attest.SEVSNP}, m48, ""},
		{[]attest.TEE{attest.SEVSNP}, m32, "32 bytes, want 48 (sev-snp MEASUREMENT)"},
		{[]attest.TEE{attest.SGX}, m32, ""},
		{[]attest.TEE{attest.SGX}, m48, "want 32 (sgx MRENCLAVE)"},
		{[]attest.TEE{attest.SGX, attest.TDX}, m48, ""},
		{[]attest.TEE{attest.TDX}, make([]byte, 64), "want 48 (tdx MRTD)"},
		{nil, m32, ""}, // spec.tee invalid: its own error; any scheme's length passes
	} {
		tees := map[attest.TEE]bool{}
		for _, x := range tc.tees {
			tees[x] = true
		}
		err := checkMeasurement(measurementRules(tees), tc.m)
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%v, %d bytes: %v, want %q", tc.tees, len(tc.m), err, tc.err)
		}
	}
}
