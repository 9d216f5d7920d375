package eventlog

import (
	"encoding/binary"
	"fmt"
)

// CCELTable is the ACPI CC Event Log table (/sys/firmware/acpi/tables/CCEL): the CC type of the
// platform and where its log area lives.
type CCELTable struct {
	CCType    uint8
	CCSubtype uint8
	// LAML is the log area's minimum length, LASA its start address.
	LAML uint64
	LASA uint64
}

// CCTypeTDX is the CC type of Intel TDX in the CCEL table.
const CCTypeTDX = 2

const ccelTableLen = 56

// ParseCCELTable parses and checks an ACPI CCEL table: signature, length, checksum.
func ParseCCELTable(b []byte) (*CCELTable, error) {
	if len(b) < ccelTableLen {
		return nil, fmt.Errorf("eventlog: CCEL table is %d bytes, want at least %d", len(b), ccelTableLen)
	}
	if string(b[0:4]) != "CCEL" {
		return nil, fmt.Errorf("eventlog: ACPI table signature %q, want \"CCEL\"", b[0:4])
	}
	n := binary.LittleEndian.Uint32(b[4:8])
	if n < ccelTableLen || uint64(n) > uint64(len(b)) {
		return nil, fmt.Errorf("eventlog: CCEL table length field %d does not fit %d bytes", n, len(b))
	}
	var sum byte
	for _, c := range b[:n] {
		sum += c
	}
	if sum != 0 {
		return nil, fmt.Errorf("eventlog: CCEL table checksum is wrong (sum %#x)", sum)
	}
	return &CCELTable{
		CCType:    b[36],
		CCSubtype: b[37],
		LAML:      binary.LittleEndian.Uint64(b[40:48]),
		LASA:      binary.LittleEndian.Uint64(b[48:56]),
	}, nil
}

// CheckTDXLog checks that the table describes a TDX log area that can hold a log of n bytes.
func (t *CCELTable) CheckTDXLog(n int) error {
	if t.CCType != CCTypeTDX {
		return fmt.Errorf("eventlog: CCEL table names CC type %d, want TDX (%d)", t.CCType, CCTypeTDX)
	}
	if uint64(n) > t.LAML {
		return fmt.Errorf("eventlog: log of %d bytes exceeds the CCEL log area (%d bytes)", n, t.LAML)
	}
	return nil
}
