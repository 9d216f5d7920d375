//go:build !ego

package ego

import (
	"errors"
	"fmt"

	"github.com/medicus-cloud/trust/enclave"
)

// detect without the ego tag: the EGo runtime is not linked in, whatever the machine is.
func detect() (ReportFunc, error) {
	return nil, fmt.Errorf(errPrefix+"%w; "+buildHint+": %w", errors.New("built without the ego build tag"), enclave.ErrNoTEE)
}
