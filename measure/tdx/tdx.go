// Package tdx computes expected Intel TDX measurements from build artifacts: MRTD from a TDVF
// (OVMF for TDX) image as the TDX module's TDH.MEM.PAGE.ADD and TDH.MR.EXTEND define it, and
// RTMR1 and RTMR2 of a measured direct boot as TDVF and the Linux EFI stub extend them.
//
// RTMR0 is not computed: it covers the TD HOB, the ACPI tables and the UEFI variables the VMM
// provides, which depend on the VMM's configuration rather than on artifacts.
package tdx

import (
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"unicode/utf16"
)

// DigestSize is the size of MRTD and of an RTMR (SHA-384).
const DigestSize = sha512.Size384

const (
	pageSize        = 0x1000
	extendChunk     = 0x100
	attrMRExtend    = 0x1
	attrPageAug     = 0x2
	footerTrailer   = 32
	tableEntryHdr   = 18
	descriptorSize  = 16
	sectionDescSize = 32
	maxSectionPages = 1 << 20 // 4 GiB per section: a bound on the work a hostile image can ask for
)

// GUIDs in UEFI byte order.
var (
	guidFooter       = [16]byte{0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45, 0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d}
	guidTDXMetadata  = [16]byte{0x35, 0x65, 0x7a, 0xe4, 0x4a, 0x98, 0x98, 0x47, 0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2}
	errNoTDXMetadata = errors.New("tdx: image has no TDX metadata (not a TDVF image?)")
)

// Section is one TDVF metadata section (TDVF spec, TDVF_SECTION).
type Section struct {
	DataOffset     uint32
	RawDataSize    uint32
	MemoryAddress  uint64
	MemoryDataSize uint64
	Type           uint32
	Attributes     uint32
}

// TDVF is a parsed TDVF image.
type TDVF struct {
	image    []byte
	Sections []Section
}

// ParseTDVF finds the TDVF descriptor through the OVMF footer table (GUID
// e47a6535-984a-4798-865e-4685a7bf8ec2) and reads its sections.
func ParseTDVF(image []byte) (*TDVF, error) {
	off, err := metadataOffset(image)
	if err != nil {
		return nil, err
	}
	if off < descriptorSize || int64(off) > int64(len(image)) {
		return nil, fmt.Errorf("tdx: TDVF descriptor offset %d lies outside the image", off)
	}
	start := len(image) - int(off)
	d := image[start : start+descriptorSize]
	if string(d[0:4]) != "TDVF" {
		return nil, errors.New("tdx: wrong TDVF descriptor signature")
	}
	if v := binary.LittleEndian.Uint32(d[8:12]); v != 1 {
		return nil, fmt.Errorf("tdx: TDVF descriptor version %d, want 1", v)
	}
	n := binary.LittleEndian.Uint32(d[12:16])
	if uint64(n)*sectionDescSize > uint64(len(image)-start-descriptorSize) {
		return nil, fmt.Errorf("tdx: %d TDVF sections overrun the image", n)
	}
	t := &TDVF{image: image}
	for i := 0; i < int(n); i++ {
		b := image[start+descriptorSize+i*sectionDescSize:]
		s := Section{
			DataOffset:     binary.LittleEndian.Uint32(b[0:]),
			RawDataSize:    binary.LittleEndian.Uint32(b[4:]),
			MemoryAddress:  binary.LittleEndian.Uint64(b[8:]),
			MemoryDataSize: binary.LittleEndian.Uint64(b[16:]),
			Type:           binary.LittleEndian.Uint32(b[24:]),
			Attributes:     binary.LittleEndian.Uint32(b[28:]),
		}
		if s.MemoryAddress%pageSize != 0 || s.MemoryDataSize%pageSize != 0 {
			return nil, fmt.Errorf("tdx: TDVF section %d is not page aligned", i)
		}
		if s.MemoryDataSize/pageSize > maxSectionPages {
			return nil, fmt.Errorf("tdx: TDVF section %d is %d bytes", i, s.MemoryDataSize)
		}
		if uint64(s.RawDataSize) > s.MemoryDataSize {
			return nil, fmt.Errorf("tdx: TDVF section %d has more raw data than memory", i)
		}
		if s.Attributes&attrMRExtend != 0 && (s.RawDataSize != uint32(s.MemoryDataSize) ||
			uint64(s.DataOffset)+uint64(s.RawDataSize) > uint64(len(image))) {
			return nil, fmt.Errorf("tdx: measured TDVF section %d does not lie inside the image", i)
		}
		t.Sections = append(t.Sections, s)
	}
	return t, nil
}

func metadataOffset(image []byte) (uint32, error) {
	end := len(image) - footerTrailer
	if end < tableEntryHdr {
		return 0, errNoTDXMetadata
	}
	if [16]byte(image[end-16:end]) != guidFooter {
		return 0, errNoTDXMetadata
	}
	size := int(binary.LittleEndian.Uint16(image[end-tableEntryHdr:]))
	if size < tableEntryHdr || size > end {
		return 0, errors.New("tdx: footer table length overruns the image")
	}
	table := image[end-size : end-tableEntryHdr]
	for len(table) >= tableEntryHdr {
		h := table[len(table)-tableEntryHdr:]
		n := int(binary.LittleEndian.Uint16(h))
		if n < tableEntryHdr || n > len(table) {
			return 0, fmt.Errorf("tdx: footer table entry has invalid size %d", n)
		}
		if [16]byte(h[2:]) == guidTDXMetadata {
			data := table[len(table)-n : len(table)-tableEntryHdr]
			if len(data) < 4 {
				return 0, errNoTDXMetadata
			}
			return binary.LittleEndian.Uint32(data[len(data)-4:]), nil
		}
		table = table[:len(table)-n]
	}
	return 0, errNoTDXMetadata
}

// PageOrder is the order in which the VMM adds and extends a section's pages.
type PageOrder int

const (
	// SinglePass adds each page and extends it before the next (KVM's page-by-page
	// KVM_TDX_INIT_MEM_REGION with measurement, current upstream Linux and QEMU).
	SinglePass PageOrder = iota
	// TwoPass adds all pages of a section, then extends them (earlier TDX QEMU/KVM trees).
	TwoPass
)

// MRTD computes the TD's build-time measurement: for each section not added with PAGE.AUG,
// a 128-byte "MEM.PAGE.ADD" || GPA block per page, and for sections with the MR.EXTEND
// attribute a 128-byte "MR.EXTEND" || GPA block followed by the 256 bytes measured, per chunk.
func (t *TDVF) MRTD(order PageOrder) [DigestSize]byte {
	h := sha512.New384()
	for _, s := range t.Sections {
		pages := s.MemoryDataSize / pageSize
		switch order {
		case TwoPass:
			for p := uint64(0); p < pages; p++ {
				t.pageAdd(h, s, p)
			}
			for p := uint64(0); p < pages; p++ {
				t.extend(h, s, p)
			}
		default:
			for p := uint64(0); p < pages; p++ {
				t.pageAdd(h, s, p)
				t.extend(h, s, p)
			}
		}
	}
	var out [DigestSize]byte
	h.Sum(out[:0])
	return out
}

func block(op string, gpa uint64) []byte {
	b := make([]byte, 128)
	copy(b, op)
	binary.LittleEndian.PutUint64(b[16:], gpa)
	return b
}

func (t *TDVF) pageAdd(h hash.Hash, s Section, page uint64) {
	if s.Attributes&attrPageAug == 0 {
		h.Write(block("MEM.PAGE.ADD", s.MemoryAddress+page*pageSize))
	}
}

func (t *TDVF) extend(h hash.Hash, s Section, page uint64) {
	if s.Attributes&attrMRExtend == 0 {
		return
	}
	for c := uint64(0); c < pageSize; c += extendChunk {
		h.Write(block("MR.EXTEND", s.MemoryAddress+page*pageSize+c))
		off := uint64(s.DataOffset) + page*pageSize + c
		h.Write(t.image[off : off+extendChunk])
	}
}

// Extend computes an RTMR from zero over the given event digests.
func Extend(digests ...[]byte) [DigestSize]byte {
	var r [DigestSize]byte
	for _, d := range digests {
		h := sha512.New384()
		h.Write(r[:])
		h.Write(d)
		h.Sum(r[:0])
	}
	return r
}

func sum(b []byte) []byte { s := sha512.Sum384(b); return s[:] }

// EFI action strings TDVF measures into RTMR1 (as EV_EFI_ACTION events; their digests are
// checked against a real CCEL in the tests).
const (
	actionCallingEFIApp = "Calling EFI Application from Boot Option"
	actionExitBS        = "Exit Boot Services Invocation"
	actionExitBSOK      = "Exit Boot Services Returned with Success"
)

// RTMR1 is the RTMR1 of a direct boot of a kernel whose Authenticode SHA-384 digest is given:
// the boot-option action, the separator, the kernel image, then the two ExitBootServices
// actions, in the order TDVF measures them.
func RTMR1(kernelAuthenticode []byte) [DigestSize]byte {
	return Extend(sum([]byte(actionCallingEFIApp)), sum([]byte{0, 0, 0, 0}), kernelAuthenticode,
		sum([]byte(actionExitBS)), sum([]byte(actionExitBSOK)))
}

// DirectBootCmdline is the command line the kernel receives from OVMF's QEMU kernel loader:
// "initrd=initrd " is prepended when an initrd is passed.
func DirectBootCmdline(cmdline string, hasInitrd bool) string {
	if hasInitrd {
		return "initrd=initrd " + cmdline
	}
	return cmdline
}

// RTMR2 is the RTMR2 the Linux EFI stub produces: the kernel command line as UTF-16LE with
// its NUL terminator, then the initrd (when there is one).
func RTMR2(cmdline string, initrd []byte) [DigestSize]byte {
	u := utf16.Encode([]rune(cmdline + "\x00"))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	if initrd == nil {
		return Extend(sum(b))
	}
	return Extend(sum(b), sum(initrd))
}
