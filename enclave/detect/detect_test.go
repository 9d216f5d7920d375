package detect

import (
	"errors"
	"os"
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
