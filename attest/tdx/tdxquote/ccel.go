package tdxquote

// Names of a TDX guest's event-log entries in attest.Evidence.Collateral (evidence.collateral
// in the protocol): the guest's provider attaches them, the verifier replays them (see
// attest/tdx and docs/protocol.md §7.1).
const (
	// CollateralCCELTable is the ACPI CCEL table, /sys/firmware/acpi/tables/CCEL on the guest.
	CollateralCCELTable = "ccel.table"
	// CollateralCCELLog is the CCEL log area, /sys/firmware/acpi/tables/data/CCEL on the guest.
	CollateralCCELLog = "ccel.log"
)
