package snp

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// VMMType names the hypervisor whose launch sequence is reproduced.
type VMMType int

// VMM types, named as sev-snp-measure's --vmm-type names them.
const (
	VMMQEMU VMMType = iota
	VMMEC2
	VMMGCE
)

// ParseVMMType accepts "QEMU", "ec2" and "gce" (the spellings of sev-snp-measure).
func ParseVMMType(s string) (VMMType, error) {
	switch s {
	case "QEMU":
		return VMMQEMU, nil
	case "ec2":
		return VMMEC2, nil
	case "gce":
		return VMMGCE, nil
	}
	return 0, fmt.Errorf("snp: unknown VMM type %q (want QEMU, ec2 or gce)", s)
}

func (v VMMType) String() string {
	switch v {
	case VMMQEMU:
		return "QEMU"
	case VMMEC2:
		return "ec2"
	case VMMGCE:
		return "gce"
	}
	return fmt.Sprintf("VMMType(%d)", int(v))
}

// DirectBoot is a kernel, initrd and command line that QEMU measures through the SEV hashes
// table (measured direct boot). A nil Initrd hashes as empty.
type DirectBoot struct {
	Kernel  []byte
	Initrd  []byte
	Cmdline string
}

// Params are the inputs of an snp-mode launch digest.
type Params struct {
	VCPUs int
	// VCPUSig is the CPUID signature of the guest vCPU type (QEMU puts it in RDX at reset).
	VCPUSig uint32
	// GuestFeatures is the VMSA SEV_FEATURES value (sev-snp-measure's default is 0x1).
	GuestFeatures uint64
	VMM           VMMType
	// OVMFHash, when set, is the precomputed digest of the OVMF pages (mode snp:ovmf-hash); the
	// firmware's content is then used only for its metadata.
	OVMFHash []byte
	// Boot, when set, is measured through the SEV hashes table.
	Boot *DirectBoot

	// legacyEC2RDX selects the EC2 reset RDX of 0 that sev-snp-measure (and its Go port) used
	// before 2026, under which their published EC2 vectors were computed. Tests only.
	legacyEC2RDX bool
}

// OVMFHash is the launch digest after the OVMF pages alone (sev-snp-measure --mode snp:ovmf-hash).
func OVMFHash(fw *Firmware) ([DigestSize]byte, error) {
	var d launchDigest
	err := d.normalPages(fw.gpa, fw.data)
	return d.ld, err
}

// LaunchDigest computes the SNP launch MEASUREMENT of a guest booted from fw.
func LaunchDigest(fw *Firmware, p Params) ([DigestSize]byte, error) {
	var d launchDigest
	if p.VCPUs < 1 {
		return d.ld, fmt.Errorf("snp: vcpus must be at least 1, got %d", p.VCPUs)
	}
	if p.OVMFHash != nil {
		if len(p.OVMFHash) != DigestSize {
			return d.ld, fmt.Errorf("snp: OVMF hash has %d bytes, want %d", len(p.OVMFHash), DigestSize)
		}
		copy(d.ld[:], p.OVMFHash)
	} else if err := d.normalPages(fw.gpa, fw.data); err != nil {
		return d.ld, err
	}
	if err := metadataPages(&d, fw, p.Boot, p.VMM); err != nil {
		return d.ld, err
	}
	apEIP, err := fw.resetEIP()
	if err != nil {
		return d.ld, err
	}
	bsp := resetVMSA(bspEIP, p.GuestFeatures, p.VCPUSig, p.VMM, p.legacyEC2RDX)
	var ap []byte
	if p.VCPUs > 1 {
		if apEIP == 0 {
			return d.ld, errors.New("snp: firmware has no AP reset address for more than one vCPU")
		}
		ap = resetVMSA(apEIP, p.GuestFeatures, p.VCPUSig, p.VMM, p.legacyEC2RDX)
	}
	d.vmsaPage(bsp)
	for i := 1; i < p.VCPUs; i++ {
		d.vmsaPage(ap)
	}
	return d.ld, nil
}

func metadataPages(d *launchDigest, fw *Firmware, boot *DirectBoot, vmm VMMType) error {
	if boot != nil && !fw.hasSection(SectionSNPKernelHashes) {
		return errors.New("snp: kernel given but the OVMF metadata has no SNP_KERNEL_HASHES section")
	}
	for _, s := range fw.sections {
		gpa, size := uint64(s.GPA), uint64(s.Size)
		var err error
		switch s.Type {
		case SectionSNPSecMem:
			if vmm == VMMGCE {
				err = d.emptyPages(pageUnmeasured, gpa, size)
			} else {
				err = d.emptyPages(pageZero, gpa, size)
			}
		case SectionSNPSecrets:
			d.onePage(pageSecrets, gpa)
		case SectionCPUID:
			if vmm != VMMEC2 {
				d.onePage(pageCPUID, gpa)
			}
		case SectionSNPKernelHashes:
			if boot == nil {
				err = d.emptyPages(pageZero, gpa, size)
				break
			}
			var page []byte
			page, err = hashesPage(fw, boot)
			if err == nil && size != uint64(len(page)) {
				err = fmt.Errorf("snp: SNP_KERNEL_HASHES section is %d bytes, want one page", size)
			}
			if err == nil {
				err = d.normalPages(gpa, page)
			}
		case SectionSVSMCAA:
			err = d.emptyPages(pageZero, gpa, size)
		}
		if err != nil {
			return err
		}
	}
	if vmm == VMMEC2 {
		// EC2 measures the CPUID page after all other metadata pages.
		for _, s := range fw.sections {
			if s.Type == SectionCPUID {
				d.onePage(pageCPUID, uint64(s.GPA))
			}
		}
	}
	return nil
}

// hashTableSize is the SEV hashes table: GUID, u16 length, then cmdline, initrd and kernel
// entries of GUID, u16 length, SHA-256.
const (
	hashEntrySize = 16 + 2 + sha256.Size
	hashTableSize = 16 + 2 + 3*hashEntrySize
)

// SEVHashesTable is the table QEMU writes for measured direct boot, padded to 16 bytes.
func SEVHashesTable(b *DirectBoot) []byte {
	padded := (hashTableSize + 15) &^ 15
	t := make([]byte, padded)
	copy(t[0:16], guidHashTableHdr[:])
	binary.LittleEndian.PutUint16(t[16:18], hashTableSize)
	cmd := sha256.Sum256(append([]byte(b.Cmdline), 0))
	initrd := sha256.Sum256(b.Initrd)
	kernel := sha256.Sum256(b.Kernel)
	off := 18
	for _, e := range []struct {
		g guid
		h [32]byte
	}{{guidCmdlineEntry, cmd}, {guidInitrdEntry, initrd}, {guidKernelEntry, kernel}} {
		copy(t[off:off+16], e.g[:])
		binary.LittleEndian.PutUint16(t[off+16:off+18], hashEntrySize)
		copy(t[off+18:off+hashEntrySize], e.h[:])
		off += hashEntrySize
	}
	return t
}

func hashesPage(fw *Firmware, b *DirectBoot) ([]byte, error) {
	gpa, err := fw.hashTableGPA()
	if err != nil {
		return nil, err
	}
	t := SEVHashesTable(b)
	off := int(gpa & (pageSize - 1))
	if off+len(t) > pageSize {
		return nil, fmt.Errorf("snp: SEV hashes table at gpa %#x crosses a page", gpa)
	}
	page := make([]byte, pageSize)
	copy(page[off:], t)
	return page, nil
}

// SVSMLaunchDigest computes the launch digest of a COCONUT-SVSM guest under QEMU (mode
// snp:svsm): OVMF at 4 GiB, the variable store below it, the SVSM image below that.
func SVSMLaunchDigest(ovmf *Firmware, svsmImage []byte, varsSize uint64, vcpus int, sig uint32) ([DigestSize]byte, error) {
	var d launchDigest
	if vcpus < 1 {
		return d.ld, fmt.Errorf("snp: vcpus must be at least 1, got %d", vcpus)
	}
	if varsSize > ovmf.gpa || varsSize%pageSize != 0 {
		return d.ld, fmt.Errorf("snp: vars size %d is not whole pages below the OVMF image", varsSize)
	}
	svsm, err := parseFirmware(svsmImage, ovmf.gpa-varsSize)
	if err != nil {
		return d.ld, fmt.Errorf("svsm image: %w", err)
	}
	entry, ok := svsm.tableU32(guidSVSMInfo)
	if !ok {
		return d.ld, errors.New("snp: SVSM image has no SVSM info entry in its footer table")
	}
	if err := d.normalPages(ovmf.gpa, ovmf.data); err != nil {
		return d.ld, err
	}
	if err := d.normalPages(svsm.gpa, svsm.data); err != nil {
		return d.ld, err
	}
	if err := metadataPages(&d, svsm, nil, VMMQEMU); err != nil {
		return d.ld, err
	}
	page := svsmVMSA(uint64(entry)+svsm.gpa, sig)
	for i := 0; i < vcpus; i++ {
		d.vmsaPage(page)
	}
	return d.ld, nil
}

// CPUSig computes a CPUID Fn0000_0001_EAX signature from family, model and stepping.
func CPUSig(family, model, stepping int) uint32 {
	famLow, famHigh := family, 0
	if family > 0xf {
		famLow, famHigh = 0xf, (family-0xf)&0xff
	}
	return uint32(famHigh<<20 | ((model>>4)&0xf)<<16 | famLow<<8 | (model&0xf)<<4 | stepping&0xf)
}

// VCPUTypes maps QEMU CPU model names to their signatures (the --vcpu-type choices).
var VCPUTypes = map[string]uint32{
	"EPYC": CPUSig(23, 1, 2), "EPYC-v1": CPUSig(23, 1, 2), "EPYC-v2": CPUSig(23, 1, 2),
	"EPYC-IBPB": CPUSig(23, 1, 2), "EPYC-v3": CPUSig(23, 1, 2), "EPYC-v4": CPUSig(23, 1, 2),
	"EPYC-Rome": CPUSig(23, 49, 0), "EPYC-Rome-v1": CPUSig(23, 49, 0), "EPYC-Rome-v2": CPUSig(23, 49, 0),
	"EPYC-Rome-v3": CPUSig(23, 49, 0), "EPYC-Milan": CPUSig(25, 1, 1), "EPYC-Milan-v1": CPUSig(25, 1, 1),
	"EPYC-Milan-v2": CPUSig(25, 1, 1), "EPYC-Genoa": CPUSig(25, 17, 0), "EPYC-Genoa-v1": CPUSig(25, 17, 0),
	"EPYC-Turin": CPUSig(26, 0, 0), "EPYC-Turin-v1": CPUSig(26, 0, 0),
}
