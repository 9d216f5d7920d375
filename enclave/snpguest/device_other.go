//go:build !linux

package snpguest

import (
	"fmt"

	"github.com/medicus-cloud/trust/enclave"
)

type noDevice struct{}

func openDevice(path string) (*noDevice, error) {
	return nil, fmt.Errorf("snp: %s: SEV-SNP guests run Linux: %w", path, enclave.ErrNoTEE)
}

func (noDevice) extReport([64]byte, uint32, []byte) ([]byte, uint32, uint64, error) {
	return nil, 0, 0, enclave.ErrNoTEE
}

func (noDevice) close() error { return nil }
