package daemon

import (
	"path/filepath"

	"github.com/medicus-cloud/trust/breakglass"
	"github.com/medicus-cloud/trust/consent"
)

// duties is the admin-only state of the patient-data duties: the consent registry (tenant keys,
// withdrawals) and the two-person requests (break-glass, shred), each a private file in the
// data directory. With several replicas, the data directory must be shared (or the files
// replicated) for a withdrawal to reach every replica: see SECURITY.md.
type duties struct {
	consent    *consent.Registry
	breakGlass *breakglass.Store
}

func openDuties(dataDir string) (*duties, error) {
	c, err := consent.Open(filepath.Join(dataDir, "consent.json"))
	if err != nil {
		return nil, err
	}
	b, err := breakglass.Open(filepath.Join(dataDir, "breakglass.json"))
	if err != nil {
		return nil, err
	}
	return &duties{consent: c, breakGlass: b}, nil
}
