package enclave

import (
	"bytes"
	"os"
)

// A Detector finds one kind of TEE on the machine. Each hardware provider package exports one
// (ego.Detector, tdxguest.Detector, snpguest.Detector); enclave/detect tries them in order.
type Detector struct {
	// What names what it looks for, for the error when no detector finds anything.
	What string
	// Detect returns the provider when the TEE is present and nil, nil when it is not. It must
	// not obtain evidence: only look.
	Detect func(m Machine) (Provider, error)
}

// Machine is what detectors look at. The zero value is the real machine; tests point ReadFile
// and Stat at fixtures.
type Machine struct {
	ReadFile func(string) ([]byte, error)
	Stat     func(string) (os.FileInfo, error)
}

// Exists reports whether path exists.
func (m Machine) Exists(path string) bool {
	stat := m.Stat
	if stat == nil {
		stat = os.Stat
	}
	_, err := stat(path)
	return err == nil
}

// CPUFlag reports whether the first processor's flags in /proc/cpuinfo include flag.
func (m Machine) CPUFlag(flag string) bool {
	read := m.ReadFile
	if read == nil {
		read = os.ReadFile
	}
	b, err := read("/proc/cpuinfo")
	if err != nil {
		return false
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("flags")) {
			if i := bytes.IndexByte(line, ':'); i >= 0 {
				for _, f := range bytes.Fields(line[i+1:]) {
					if string(f) == flag {
						return true
					}
				}
			}
			return false
		}
	}
	return false
}
