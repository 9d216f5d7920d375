// Package enclave is the guest side of attestation: it obtains evidence from the TEE the
// workload runs in, and makes the ephemeral key that releases are sealed to.
//
// Providers live in subpackages (sim, and the hardware ones: snp, tdx, tsm, ego). The private key
// never leaves the workload's memory.
package enclave

import (
	"context"
	"errors"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/seal"
)

// Provider produces evidence whose report data is exactly reportData.
type Provider interface {
	TEE() attest.TEE
	Evidence(ctx context.Context, reportData [attest.ReportDataSize]byte) (*attest.Evidence, error)
}

// ErrNoTEE is wrapped by providers when the TEE interface they need is absent on this machine.
var ErrNoTEE = errors.New("no TEE interface found")

// Key is an ephemeral workload key bound to one attestation.
type Key struct {
	*seal.PrivateKey
}

// NewKey makes an ephemeral key in suite s (seal.X25519 or seal.MLKEM768X25519).
func NewKey(s seal.Suite) (*Key, error) {
	k, err := seal.GenerateKey(s)
	if err != nil {
		return nil, err
	}
	return &Key{k}, nil
}

// ReportData is the value to put in the TEE report for this key and nonce.
func (k *Key) ReportData(nonce []byte) [attest.ReportDataSize]byte {
	return attest.ReportData(nonce, k.Suite().ID(), k.Public().Bytes())
}
