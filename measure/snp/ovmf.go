package snp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// SectionType is the type of a section that OVMF's SEV metadata (signature "ASEV") declares.
type SectionType uint32

// Section types of OvmfSevMetadata (edk2 OvmfPkg/ResetVector).
const (
	SectionSNPSecMem       SectionType = 1
	SectionSNPSecrets      SectionType = 2
	SectionCPUID           SectionType = 3
	SectionSVSMCAA         SectionType = 4
	SectionSNPKernelHashes SectionType = 0x10
)

// Section is one SEV metadata section: a guest-physical range and what the VMM puts there.
type Section struct {
	GPA  uint32
	Size uint32
	Type SectionType
}

// GUIDs of the OVMF footer table, in the mixed-endian byte order UEFI stores them.
var (
	guidFooterTable   = mustGUID("96b582de-1fb2-45f7-baea-a366c55a082d")
	guidSEVHashTable  = mustGUID("7255371f-3a3b-4b04-927b-1da6efa8d454")
	guidSEVESReset    = mustGUID("00f771de-1a7e-4fcb-890e-68c77e2fb44e")
	guidSEVMetadata   = mustGUID("dc886566-984a-4798-a75e-5585a7bf67cc")
	guidSVSMInfo      = mustGUID("a789a612-0597-4c4b-a49f-cbb1fe9d1ddd")
	guidHashTableHdr  = mustGUID("9438d606-4f22-4cc9-b479-a793d411fd21")
	guidKernelEntry   = mustGUID("4de79437-abd2-427f-b835-d5b172d2045b")
	guidInitrdEntry   = mustGUID("44baf731-3a2f-4bd7-9af1-41e29169781d")
	guidCmdlineEntry  = mustGUID("97d02dd8-bd20-4c94-aa78-e7714d36ab2a")
	errNoResetBlock   = errors.New("snp: firmware has no SEV-ES reset block in its footer table")
	errNoHashTableRef = errors.New("snp: firmware has no SEV hashes table entry in its footer table")
)

type guid [16]byte

// mustGUID encodes a textual GUID in UEFI byte order (first three fields little-endian).
func mustGUID(s string) guid {
	var raw [16]byte
	j := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			continue
		}
		if j >= 32 {
			panic("bad guid " + s)
		}
		raw[j/2] |= hexNibble(s[i]) << (4 * (1 - j%2))
		j++
	}
	if j != 32 {
		panic("bad guid " + s)
	}
	var g guid
	g[0], g[1], g[2], g[3] = raw[3], raw[2], raw[1], raw[0]
	g[4], g[5] = raw[5], raw[4]
	g[6], g[7] = raw[7], raw[6]
	copy(g[8:], raw[8:])
	return g
}

func hexNibble(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	panic("bad hex digit")
}

// Firmware is a parsed OVMF (or SVSM) image placed so that it ends at a given guest-physical
// address (4 GiB for OVMF).
type Firmware struct {
	data     []byte
	gpa      uint64
	table    map[guid][]byte
	sections []Section
}

const fourGiB = 1 << 32

// ParseOVMF parses an OVMF image mapped to end at 4 GiB.
func ParseOVMF(data []byte) (*Firmware, error) { return parseFirmware(data, fourGiB) }

func parseFirmware(data []byte, endAt uint64) (*Firmware, error) {
	if len(data) == 0 || len(data)%pageSize != 0 {
		return nil, fmt.Errorf("snp: firmware size %d is not a positive multiple of 4 KiB", len(data))
	}
	if uint64(len(data)) > endAt {
		return nil, fmt.Errorf("snp: firmware of %d bytes does not fit below gpa %#x", len(data), endAt)
	}
	f := &Firmware{data: data, gpa: endAt - uint64(len(data)), table: map[guid][]byte{}}
	if err := f.parseFooterTable(); err != nil {
		return nil, err
	}
	if err := f.parseMetadata(); err != nil {
		return nil, err
	}
	return f, nil
}

const tableEntryHeader = 2 + 16 // u16 size, GUID

// parseFooterTable reads the GUIDed table that ends 32 bytes before the end of the image. Each
// entry is DATA || u16 size || GUID, read backwards from the footer entry. An image without the
// footer GUID has an empty table (as sev-snp-measure treats it).
func (f *Firmware) parseFooterTable() error {
	start := len(f.data) - 32 - tableEntryHeader
	if start < 0 {
		return nil
	}
	hdr := f.data[start : start+tableEntryHeader]
	if guid(hdr[2:18]) != guidFooterTable {
		return nil
	}
	size := int(binary.LittleEndian.Uint16(hdr[0:2]))
	tableSize := size - tableEntryHeader
	if tableSize < 0 {
		return nil
	}
	if tableSize > start {
		return fmt.Errorf("snp: firmware footer table of %d bytes overruns the image", tableSize)
	}
	table := f.data[start-tableSize : start]
	for len(table) >= tableEntryHeader {
		eh := table[len(table)-tableEntryHeader:]
		esize := int(binary.LittleEndian.Uint16(eh[0:2]))
		if esize < tableEntryHeader {
			return fmt.Errorf("snp: firmware footer table entry has invalid size %d", esize)
		}
		if esize > len(table) {
			return fmt.Errorf("snp: firmware footer table entry of %d bytes overruns the table", esize)
		}
		f.table[guid(eh[2:18])] = table[len(table)-esize : len(table)-tableEntryHeader]
		table = table[:len(table)-esize]
	}
	return nil
}

func (f *Firmware) tableU32(g guid) (uint32, bool) {
	e, ok := f.table[g]
	if !ok || len(e) < 4 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(e[:4]), true
}

func (f *Firmware) parseMetadata() error {
	off, ok := f.tableU32(guidSEVMetadata)
	if !ok {
		return nil
	}
	if off < 16 || int64(off) > int64(len(f.data)) {
		return fmt.Errorf("snp: SEV metadata offset %d lies outside the image", off)
	}
	start := len(f.data) - int(off)
	h := f.data[start : start+16]
	if string(h[0:4]) != "ASEV" {
		return errors.New("snp: wrong SEV metadata signature")
	}
	size := binary.LittleEndian.Uint32(h[4:8])
	if v := binary.LittleEndian.Uint32(h[8:12]); v != 1 {
		return fmt.Errorf("snp: SEV metadata version %d, want 1", v)
	}
	n := binary.LittleEndian.Uint32(h[12:16])
	if size < 16 || int64(size) > int64(off) || uint64(n)*12 > uint64(size-16) {
		return fmt.Errorf("snp: SEV metadata of %d bytes with %d sections overruns the image", size, n)
	}
	items := f.data[start+16 : start+int(size)]
	for i := 0; i < int(n); i++ {
		it := items[i*12 : i*12+12]
		s := Section{
			GPA:  binary.LittleEndian.Uint32(it[0:4]),
			Size: binary.LittleEndian.Uint32(it[4:8]),
			Type: SectionType(binary.LittleEndian.Uint32(it[8:12])),
		}
		switch s.Type {
		case SectionSNPSecMem, SectionSNPSecrets, SectionCPUID, SectionSVSMCAA, SectionSNPKernelHashes:
		default:
			return fmt.Errorf("snp: unknown OVMF metadata section type %d", s.Type)
		}
		f.sections = append(f.sections, s)
	}
	return nil
}

// GPA is the guest-physical address the image starts at.
func (f *Firmware) GPA() uint64 { return f.gpa }

// Sections lists the SEV metadata sections in image order.
func (f *Firmware) Sections() []Section { return append([]Section(nil), f.sections...) }

func (f *Firmware) hasSection(t SectionType) bool {
	for _, s := range f.sections {
		if s.Type == t {
			return true
		}
	}
	return false
}

// resetEIP is the AP reset address from the SEV-ES reset block (0 when absent).
func (f *Firmware) resetEIP() (uint32, error) {
	v, ok := f.tableU32(guidSEVESReset)
	if !ok {
		return 0, errNoResetBlock
	}
	return v, nil
}

func (f *Firmware) hashTableGPA() (uint32, error) {
	v, ok := f.tableU32(guidSEVHashTable)
	if !ok {
		return 0, errNoHashTableRef
	}
	return v, nil
}
