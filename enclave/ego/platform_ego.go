//go:build ego

package ego

import (
	"fmt"

	egoenclave "github.com/edgelesssys/ego/enclave"

	"github.com/medicus-cloud/trust/enclave"
)

// detect asks the EGo runtime for a self report: it exists only inside an enclave started by
// `ego run` (outside, EGo's system calls fail with OE_UNSUPPORTED).
func detect() (ReportFunc, error) {
	if _, err := egoenclave.GetSelfReport(); err != nil {
		return nil, fmt.Errorf(errPrefix+"not inside an EGo enclave (%v); "+buildHint+": %w", err, enclave.ErrNoTEE)
	}
	return remoteReport, nil
}

// remoteReport calls GetRemoteReport and marks the runtime's "unsupported" (simulation mode,
// no quote provider library) as the absence of a TEE that can make quotes.
func remoteReport(reportData []byte) ([]byte, error) {
	r, err := egoenclave.GetRemoteReport(reportData)
	if err != nil && err.Error() == "OE_UNSUPPORTED" {
		return nil, fmt.Errorf("%w (simulation mode or no SGX quote provider library): %w", err, enclave.ErrNoTEE)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}
