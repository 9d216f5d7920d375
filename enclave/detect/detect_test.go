package detect

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/enclave"
)

func TestProvider(t *testing.T) {
	noFile := func(string) (os.FileInfo, error) { return nil, os.ErrNotExist }
	cpu := func(flags string) func(string) ([]byte, error) {
		return func(string) ([]byte, error) { return []byte("processor : 0\nflags : fpu " + flags + " sse\n"), nil }
	}
	notEnclave := func() (enclave.Provider, bool) { return nil, false }
	tests := []struct {
		name string
		s    System
		want attest.TEE
	}{
		{"tdx guest", System{ReadFile: cpu("tdx_guest"), Stat: noFile, InEnclave: notEnclave}, attest.TDX},
		{"snp guest", System{ReadFile: cpu("sev sev_es sev_snp"), Stat: noFile, InEnclave: notEnclave}, attest.SEVSNP},
		{"nothing", System{ReadFile: cpu("avx2"), Stat: noFile, InEnclave: notEnclave}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.s.Provider()
			if tc.want == "" {
				if !errors.Is(err, enclave.ErrNoTEE) {
					t.Fatalf("got %v, want ErrNoTEE", err)
				}
				return
			}
			if err != nil || p.TEE() != tc.want {
				t.Fatalf("got %v, %v; want %s", p, err, tc.want)
			}
		})
	}
}

// TestDetectorsOrder: the list is tried in order (EGo, TDX, SEV-SNP), and the error names what
// each detector looked for.
func TestDetectorsOrder(t *testing.T) {
	noFile := func(string) (os.FileInfo, error) { return nil, os.ErrNotExist }
	both := func(string) ([]byte, error) { return []byte("flags : tdx_guest sev_snp\n"), nil }
	notEnclave := func() (enclave.Provider, bool) { return nil, false }
	p, err := System{ReadFile: both, Stat: noFile, InEnclave: notEnclave}.Provider()
	if err != nil || p.TEE() != attest.TDX {
		t.Fatalf("both flags: %v, %v; want the TDX provider (first in Detectors)", p, err)
	}
	none := func(string) ([]byte, error) { return []byte("flags : avx2\n"), nil }
	_, err = System{ReadFile: none, Stat: noFile, InEnclave: notEnclave}.Provider()
	for _, d := range Detectors {
		if err == nil || !strings.Contains(err.Error(), d.What) {
			t.Errorf("error %v does not name %q", err, d.What)
		}
	}
}
