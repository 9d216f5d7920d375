package aztpm

import (
	"fmt"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"

	"github.com/medicus-cloud/trust/enclave"
)

// OpenDevice opens the vTPM (path "" means DefaultDevice).
func OpenDevice(path string) (transport.TPMCloser, error) {
	if path == "" {
		path = DefaultDevice
	}
	t, err := linuxtpm.Open(path)
	if err != nil {
		return nil, fmt.Errorf("aztpm: %w: %v", enclave.ErrNoTEE, err)
	}
	return t, nil
}
