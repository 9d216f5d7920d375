package intel

import (
	"errors"
	"testing"

	"github.com/medicus-cloud/trust/attest"
)

// The caches SGX and TDX verification share drop everything once past their bound, and not
// before.
func TestBoundedMap(t *testing.T) {
	var m boundedMap[int, string]
	m.max = 3
	for i := range 3 {
		m.store(i, "x")
	}
	for i := range 3 {
		if _, ok := m.load(i); !ok {
			t.Fatalf("entry %d dropped within the bound", i)
		}
	}
	m.store(3, "y")
	if _, ok := m.load(0); ok {
		t.Error("cache kept its entries past the bound")
	}
	if v, ok := m.load(3); !ok || v != "y" {
		t.Errorf("entry stored past the bound: %q, %v", v, ok)
	}
}

func TestSplitQEReportCertData(t *testing.T) {
	s := make([]byte, EnclaveReportSize+QEReportSignatureSize+2+3+5)
	s[EnclaveReportSize+QEReportSignatureSize] = 3
	r, sig, auth, rest, err := SplitQEReportCertData(s)
	if err != nil || len(r) != EnclaveReportSize || len(sig) != QEReportSignatureSize || len(auth) != 3 || len(rest) != 5 {
		t.Fatalf("split: %d %d %d %d, %v", len(r), len(sig), len(auth), len(rest), err)
	}
	if _, _, _, _, err := SplitQEReportCertData(s[:EnclaveReportSize+QEReportSignatureSize+1]); !errors.Is(err, attest.ErrMalformed) {
		t.Errorf("truncated: %v", err)
	}
	s[EnclaveReportSize+QEReportSignatureSize] = 9
	if _, _, _, _, err := SplitQEReportCertData(s); !errors.Is(err, attest.ErrMalformed) {
		t.Errorf("auth data past the end: %v", err)
	}
}
