//go:build !linux

package tdxguest

import (
	"fmt"

	"github.com/medicus-cloud/trust/enclave"
)

func openDevice(path string) (device, error) {
	return nil, fmt.Errorf("TDX guests run Linux: %w", enclave.ErrNoTEE)
}
