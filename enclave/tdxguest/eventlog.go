package tdxguest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/medicus-cloud/trust/attest/tdx/tdxquote"
)

// DefaultACPITables is where Linux exposes the ACPI tables: the CCEL table is CCEL in it and its
// log area data/CCEL.
const DefaultACPITables = "/sys/firmware/acpi/tables"

// maxCCEL bounds what is read of each CCEL file; trustd accepts at most 1 MiB of collateral.
const maxCCEL = 1 << 20

// eventLog reads the guest's CCEL table and log, when the firmware published them, as the
// evidence.collateral entries that trustd replays against the quote. A guest without a CCEL
// attaches nothing (a policy that names components will then deny); a CCEL that exists but
// cannot be read is an error rather than evidence silently lacking its log.
func (p *Provider) eventLog() (map[string][]byte, error) {
	dir := p.o.ACPITables
	if dir == "" {
		dir = DefaultACPITables
	}
	log, err := readBounded(filepath.Join(dir, "data", "CCEL"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tdx: CCEL log: %w", err)
	}
	table, err := readBounded(filepath.Join(dir, "CCEL"))
	if err != nil {
		return nil, fmt.Errorf("tdx: CCEL table: %w", err)
	}
	return map[string][]byte{tdxquote.CollateralCCELLog: log, tdxquote.CollateralCCELTable: table}, nil
}

func readBounded(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCCEL+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxCCEL {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxCCEL)
	}
	return b, nil
}
