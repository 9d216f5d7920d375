// Package detect picks the evidence provider for the TEE this process runs in: an EGo enclave,
// an SEV-SNP guest or a TDX guest. It never picks the simulated TEE: development code asks for
// that by name.
package detect

import (
	"bytes"
	"fmt"
	"os"

	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/ego"
	"github.com/medicus-cloud/trust/enclave/snpguest"
	"github.com/medicus-cloud/trust/enclave/tdxguest"
)

// System describes where to look; the zero value is the real machine.
type System struct {
	// ReadFile and Stat default to the os package (tests point them at fixtures).
	ReadFile func(string) ([]byte, error)
	Stat     func(string) (os.FileInfo, error)
	// InEnclave reports whether the process runs inside an EGo enclave; nil uses ego.Detect.
	InEnclave func() (enclave.Provider, bool)
}

// Provider returns the provider for the TEE found, or an error wrapping enclave.ErrNoTEE that
// lists what was looked for.
func Provider() (enclave.Provider, error) { return System{}.Provider() }

// Provider is the package-level Provider on s.
func (s System) Provider() (enclave.Provider, error) {
	if s.ReadFile == nil {
		s.ReadFile = os.ReadFile
	}
	if s.Stat == nil {
		s.Stat = os.Stat
	}
	if s.InEnclave == nil {
		s.InEnclave = ego.Detect
	}
	if p, ok := s.InEnclave(); ok {
		return p, nil
	}
	flags := s.cpuFlags()
	exists := func(p string) bool { _, err := s.Stat(p); return err == nil }
	switch {
	case flags["tdx_guest"] || exists(tdxguest.DefaultDevicePath):
		return tdxguest.New(tdxguest.Options{})
	case flags["sev_snp"] || exists(snpguest.DefaultDevice):
		return snpguest.New(snpguest.Options{})
	}
	return nil, fmt.Errorf("%w: not inside an EGo enclave, no tdx_guest or sev_snp CPU flag in /proc/cpuinfo, no %s or %s",
		enclave.ErrNoTEE, tdxguest.DefaultDevicePath, snpguest.DefaultDevice)
}

func (s System) cpuFlags() map[string]bool {
	b, err := s.ReadFile("/proc/cpuinfo")
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("flags")) {
			if i := bytes.IndexByte(line, ':'); i >= 0 {
				for _, f := range bytes.Fields(line[i+1:]) {
					out[string(f)] = true
				}
			}
			break
		}
	}
	return out
}
