package snp

import "encoding/binary"

// Byte offsets in the VMSA page (AMD APM vol. 2, table B-4 "VMSA layout, state save area"; struct
// sev_es_save_area in Linux).
const (
	offES          = 0x000
	offCS          = 0x010
	offSS          = 0x020
	offDS          = 0x030
	offFS          = 0x040
	offGS          = 0x050
	offGDTR        = 0x060
	offLDTR        = 0x070
	offIDTR        = 0x080
	offTR          = 0x090
	offEFER        = 0x0d0
	offCR4         = 0x148
	offCR0         = 0x158
	offDR7         = 0x160
	offDR6         = 0x168
	offRFLAGS      = 0x170
	offRIP         = 0x178
	offGPAT        = 0x268
	offRDX         = 0x310
	offSEVFeatures = 0x3b0
	offXCR0        = 0x3e8
	offMXCSR       = 0x408
	offX87FCW      = 0x410
)

type segment struct {
	selector, attrib uint16
	limit            uint32
	base             uint64
}

// vmsaState is the part of the initial register state that differs between VMMs and vCPUs.
type vmsaState struct {
	es, cs, ss, ds, fs, gs, gdtr, ldtr, idtr, tr segment

	cr0, rip, gpat, rdx, sevFeatures uint64
	mxcsr                            uint32
	fcw                              uint16
}

func (s *vmsaState) page() []byte {
	p := make([]byte, pageSize)
	seg := func(off int, v segment) {
		binary.LittleEndian.PutUint16(p[off:], v.selector)
		binary.LittleEndian.PutUint16(p[off+2:], v.attrib)
		binary.LittleEndian.PutUint32(p[off+4:], v.limit)
		binary.LittleEndian.PutUint64(p[off+8:], v.base)
	}
	u64 := func(off int, v uint64) { binary.LittleEndian.PutUint64(p[off:], v) }
	seg(offES, s.es)
	seg(offCS, s.cs)
	seg(offSS, s.ss)
	seg(offDS, s.ds)
	seg(offFS, s.fs)
	seg(offGS, s.gs)
	seg(offGDTR, s.gdtr)
	seg(offLDTR, s.ldtr)
	seg(offIDTR, s.idtr)
	seg(offTR, s.tr)
	u64(offEFER, 0x1000) // EFER.SVME, set by KVM
	u64(offCR4, 0x40)    // CR4.MCE
	u64(offCR0, s.cr0)
	u64(offDR7, 0x400)
	u64(offDR6, 0xffff0ff0)
	u64(offRFLAGS, 0x2)
	u64(offRIP, s.rip)
	u64(offGPAT, s.gpat)
	u64(offRDX, s.rdx)
	u64(offSEVFeatures, s.sevFeatures)
	u64(offXCR0, 0x1)
	binary.LittleEndian.PutUint32(p[offMXCSR:], s.mxcsr)
	binary.LittleEndian.PutUint16(p[offX87FCW:], s.fcw)
	return p
}

const (
	bspEIP     = 0xfffffff0
	defaultPAT = 0x7040600070406 // PAT MSR reset value, AMD APM vol. 2 A.3
	ec2RDX     = 0x600           // EC2's RDX at reset (current; older EC2 hosts used 0)
)

// resetVMSA is the reset-state VMSA of a vCPU that starts at eip under the given VMM. legacyEC2
// gives EC2 vCPUs the RDX of 0 that sev-snp-measure used before 2026 (its older vectors need it).
func resetVMSA(eip uint32, features uint64, sig uint32, vmm VMMType, legacyEC2 bool) []byte {
	s := vmsaState{
		es:          segment{0, 0x93, 0xffff, 0},
		cs:          segment{0xf000, 0x9b, 0xffff, uint64(eip & 0xffff0000)},
		ss:          segment{0, 0x93, 0xffff, 0},
		ds:          segment{0, 0x93, 0xffff, 0},
		fs:          segment{0, 0x93, 0xffff, 0},
		gs:          segment{0, 0x93, 0xffff, 0},
		gdtr:        segment{0, 0, 0xffff, 0},
		idtr:        segment{0, 0, 0xffff, 0},
		ldtr:        segment{0, 0x82, 0xffff, 0},
		tr:          segment{0, 0x8b, 0xffff, 0},
		cr0:         0x10,
		rip:         uint64(eip & 0xffff),
		gpat:        defaultPAT,
		sevFeatures: features,
	}
	switch vmm {
	case VMMQEMU:
		s.rdx = uint64(sig)
		s.mxcsr = 0x1f80
		s.fcw = 0x37f
	case VMMEC2:
		if eip == bspEIP {
			s.cs.attrib = 0x9a
		}
		s.ss.attrib = 0x92
		s.tr.attrib = 0x83
		s.rdx = ec2RDX
		if legacyEC2 {
			s.rdx = 0
		}
	case VMMGCE:
		s.gpat = 0x00070106 // GCE's hypervisor sets its own PAT
		s.rdx = 0x600
	}
	return s.page()
}

// svsmVMSA is the VMSA a COCONUT-SVSM boot vCPU starts with under QEMU (32-bit protected mode at
// the SVSM entry point). Its x87 control word is 0: sev-snp-measure leaves it unset in this mode.
func svsmVMSA(eip uint64, sig uint32) []byte {
	flat := segment{16, 0xc93, 0xffffffff, 0}
	s := vmsaState{
		es: flat, ss: flat, ds: flat, fs: flat,
		cs:          segment{8, 0xc9b, 0xffffffff, 0},
		gs:          segment{0, 0x93, 0xffff, 0},
		gdtr:        segment{0, 0, 0xffff, 0},
		idtr:        segment{0, 0, 0xffff, 0},
		ldtr:        segment{0, 0x82, 0xffff, 0},
		tr:          segment{0, 0x8b, 0xffff, 0},
		cr0:         0x11,
		rip:         eip,
		gpat:        defaultPAT,
		rdx:         uint64(sig),
		sevFeatures: 0x1,
		mxcsr:       0x1f80,
	}
	return s.page()
}
