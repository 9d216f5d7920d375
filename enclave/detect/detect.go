// Package detect picks the evidence provider for the TEE this process runs in, trying
// Detectors in order: an Azure confidential VM (whose SEV-SNP or TDX goes through the vTPM), an
// EGo enclave, a TDX guest, an SEV-SNP guest. It never picks the
// simulated TEE: development code asks for that by name.
package detect

import (
	"fmt"
	"os"
	"strings"

	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/aztpm"
	"github.com/medicus-cloud/trust/enclave/ego"
	"github.com/medicus-cloud/trust/enclave/snpguest"
	"github.com/medicus-cloud/trust/enclave/tdxguest"
)

// Detectors is the one ordered list of guest-side TEEs; the first one found wins. A new guest
// provider adds its package's Detector here.
var Detectors = []enclave.Detector{
	aztpm.Detector,
	ego.Detector,
	tdxguest.Detector,
	snpguest.Detector,
}

// System describes where to look; the zero value is the real machine.
type System struct {
	// ReadFile and Stat default to the os package (tests point them at fixtures).
	ReadFile func(string) ([]byte, error)
	Stat     func(string) (os.FileInfo, error)
	// InEnclave, if set, replaces the EGo detector's check (tests).
	InEnclave func() (enclave.Provider, bool)
}

// Provider returns the provider for the TEE found, or an error wrapping enclave.ErrNoTEE that
// lists what was looked for.
func Provider() (enclave.Provider, error) { return System{}.Provider() }

// Provider is the package-level Provider on s.
func (s System) Provider() (enclave.Provider, error) {
	m := enclave.Machine{ReadFile: s.ReadFile, Stat: s.Stat}
	var looked []string
	for _, d := range Detectors {
		detect := d.Detect
		if s.InEnclave != nil && d.What == ego.Detector.What {
			detect = func(enclave.Machine) (enclave.Provider, error) {
				if p, ok := s.InEnclave(); ok {
					return p, nil
				}
				return nil, nil
			}
		}
		p, err := detect(m)
		if err != nil || p != nil {
			return p, err
		}
		looked = append(looked, d.What)
	}
	return nil, fmt.Errorf("%w: found none of: %s", enclave.ErrNoTEE, strings.Join(looked, "; "))
}
