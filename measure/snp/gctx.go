package snp

import (
	"crypto/sha512"
	"encoding/binary"
	"fmt"
)

// DigestSize is the size of an SNP launch digest (SHA-384).
const DigestSize = sha512.Size384

const pageSize = 4096

// Page types of the SNP_LAUNCH_UPDATE PAGE_INFO structure (SEV-SNP ABI, Table "PAGE_TYPE").
const (
	pageNormal     = 0x01
	pageVMSA       = 0x02
	pageZero       = 0x03
	pageUnmeasured = 0x04
	pageSecrets    = 0x05
	pageCPUID      = 0x06
)

// vmsaGPA is the GPA under which the firmware records a VMSA page: (u64)-1, page aligned, bits
// above 51 cleared.
const vmsaGPA = 0xFFFFFFFFF000

// launchDigest is the running guest context digest (GCTX.LD).
type launchDigest struct {
	ld [DigestSize]byte
}

// update folds one PAGE_INFO into the digest: LD = SHA-384(LD || CONTENTS || LENGTH=0x70 ||
// PAGE_TYPE || IMI_PAGE=0 || VMPL3..1_PERMS=0 || reserved || GPA).
func (d *launchDigest) update(pageType byte, gpa uint64, contents *[DigestSize]byte) {
	var info [0x70]byte
	copy(info[0:48], d.ld[:])
	copy(info[48:96], contents[:])
	binary.LittleEndian.PutUint16(info[96:98], 0x70)
	info[98] = pageType
	// info[99] is_imi, info[100..102] VMPL3, VMPL2, VMPL1 permissions, info[103] reserved: all 0.
	binary.LittleEndian.PutUint64(info[104:112], gpa)
	d.ld = sha512.Sum384(info[:])
}

func (d *launchDigest) normalPages(gpa uint64, data []byte) error {
	if len(data)%pageSize != 0 {
		return fmt.Errorf("snp: %d bytes at gpa %#x are not whole 4 KiB pages", len(data), gpa)
	}
	for off := 0; off < len(data); off += pageSize {
		h := sha512.Sum384(data[off : off+pageSize])
		d.update(pageNormal, gpa+uint64(off), &h)
	}
	return nil
}

func (d *launchDigest) emptyPages(pageType byte, gpa uint64, size uint64) error {
	if size%pageSize != 0 {
		return fmt.Errorf("snp: section of %d bytes at gpa %#x is not whole 4 KiB pages", size, gpa)
	}
	var zero [DigestSize]byte
	for off := uint64(0); off < size; off += pageSize {
		d.update(pageType, gpa+off, &zero)
	}
	return nil
}

func (d *launchDigest) onePage(pageType byte, gpa uint64) {
	var zero [DigestSize]byte
	d.update(pageType, gpa, &zero)
}

func (d *launchDigest) vmsaPage(page []byte) {
	h := sha512.Sum384(page)
	d.update(pageVMSA, vmsaGPA, &h)
}
