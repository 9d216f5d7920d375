// Package eventlog parses and replays boot event logs: the Confidential Computing event log
// (CCEL) of an Intel TDX guest, replayed into RTMR0–3, and the TCG PC Client event log of a TPM,
// replayed into the SHA-1 and SHA-256 PCR banks it records. The replayed events become component
// claims (firmware, bootloaders and shim, kernel, initrd, command line, UKI sections, Secure Boot
// state, RTMR3 application events).
//
// Parsing of the TCG formats and of event payloads uses github.com/google/go-eventlog; the replay
// is done here, strictly: every event with a digest for the bank is extended in log order, and
// go-eventlog's "workarounds" (events it injects when a replay fails) are never applied.
//
// # Padding
//
// A CCEL log area (/sys/firmware/acpi/tables/data/CCEL) is larger than its events and firmware
// fills the rest with 0xFF (TDVF) or leaves it zeroed. At an event boundary, a remainder made only
// of 0xFF bytes or only of 0x00 bytes is padding and ends the log; its kind and length are
// reported. Anything else after the last event (mixed bytes, a partial event) is an error naming
// the byte offset. TPM logs are treated alike.
//
// # Duplicate separators
//
// Some firmware (seen in COS TDX images with GRUB) measures EV_SEPARATOR twice into the same
// register. The hardware register contains both extensions, so the replay includes both and the
// log still matches its quote. For claims, a separator repeated in a register is recorded in
// [Components.DuplicateSeparators]; events after the first separator of a register are still
// attributed as usual. Policies that care may refuse such logs; nothing here hides them.
//
// # Failure
//
// Any malformed input is an error, never a panic. A replay that does not match the quoted
// registers is a [*MismatchError] naming the first register that differs.
package eventlog
