package tdxguest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest/tdx/tdxquote"
)

// TestEventLog: the provider attaches the CCEL table and log as the guest's ACPI tables expose
// them, nothing when the firmware published no CCEL, and refuses a log without its table.
func TestEventLog(t *testing.T) {
	log, err := os.ReadFile("../../attest/eventlog/testdata/tdx/cos-113-intel-tdx.bin")
	if err != nil {
		t.Fatal(err)
	}
	table, err := os.ReadFile("../../attest/eventlog/testdata/tdx/cos-113-intel-tdx.table.bin")
	if err != nil {
		t.Fatal(err)
	}
	acpi := func(withTable bool) string {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "data", "CCEL"), log, 0o644); err != nil {
			t.Fatal(err)
		}
		if withTable {
			if err := os.WriteFile(filepath.Join(dir, "CCEL"), table, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	p, _ := New(Options{ACPITables: acpi(true)})
	got, err := p.eventLog()
	if err != nil || !bytes.Equal(got[tdxquote.CollateralCCELLog], log) || !bytes.Equal(got[tdxquote.CollateralCCELTable], table) {
		t.Fatalf("eventLog() = %d entries, %v", len(got), err)
	}
	p, _ = New(Options{ACPITables: t.TempDir()})
	if got, err := p.eventLog(); got != nil || err != nil {
		t.Fatalf("no CCEL: %v, %v", got, err)
	}
	p, _ = New(Options{ACPITables: acpi(false)})
	if _, err := p.eventLog(); err == nil || !strings.Contains(err.Error(), "CCEL table") {
		t.Fatalf("log without table: %v", err)
	}
}
