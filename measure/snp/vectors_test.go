package snp

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"testing"
)

// upstreamVector is a launch digest that an upstream tool publishes for inputs given as text: a
// precomputed OVMF hash (mode snp:ovmf-hash) and the OVMF metadata (sections and AP reset
// address). testdata/README.md names where each comes from.
type upstreamVector struct {
	Name          string `json:"name"`
	Source        string `json:"source"`
	VMM           string `json:"vmm"`
	VCPUs         int    `json:"vcpus"`
	VCPUSig       string `json:"vcpu_sig"`
	GuestFeatures string `json:"guest_features"`
	LegacyEC2RDX  bool   `json:"legacy_ec2_rdx"`
	OVMFHash      string `json:"ovmf_hash"`
	ResetEIP      string `json:"reset_eip"`
	HashesGPA     string `json:"hashes_gpa"`
	Boot          *struct {
		Kernel  string `json:"kernel"`
		Initrd  string `json:"initrd"`
		Cmdline string `json:"cmdline"`
	} `json:"boot"`
	Sections []struct {
		GPA  string `json:"gpa"`
		Size string `json:"size"`
		Type uint32 `json:"type"`
	} `json:"sections"`
	Measurement string `json:"measurement"`
}

func num(t *testing.T, field, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		t.Fatalf("%s: %v", field, err)
	}
	return v
}

// TestUpstreamVectors reproduces published launch digests. The firmware is a synthetic image
// that carries the vector's metadata in its footer table, so the OVMF parser is on the path too;
// its page contents do not matter because the OVMF hash is given.
func TestUpstreamVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/upstream-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []upstreamVector
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			im := image{pages: 4, resetEIP: uint32(num(t, "reset_eip", v.ResetEIP))}
			if v.HashesGPA != "" {
				im.hashesGPA = uint32(num(t, "hashes_gpa", v.HashesGPA))
			}
			for _, s := range v.Sections {
				im.sections = append(im.sections, Section{
					GPA:  uint32(num(t, "gpa", s.GPA)),
					Size: uint32(num(t, "size", s.Size)),
					Type: SectionType(s.Type),
				})
			}
			fw := mustParse(t, im)
			vmm, err := ParseVMMType(v.VMM)
			if err != nil {
				t.Fatal(err)
			}
			oh, err := hex.DecodeString(v.OVMFHash)
			if err != nil {
				t.Fatal(err)
			}
			var boot *DirectBoot
			if v.Boot != nil {
				boot = &DirectBoot{Kernel: []byte(v.Boot.Kernel), Initrd: []byte(v.Boot.Initrd), Cmdline: v.Boot.Cmdline}
			}
			got, err := LaunchDigest(fw, Params{
				VCPUs:         v.VCPUs,
				VCPUSig:       uint32(num(t, "vcpu_sig", v.VCPUSig)),
				GuestFeatures: num(t, "guest_features", v.GuestFeatures),
				VMM:           vmm,
				OVMFHash:      oh,
				Boot:          boot,
				legacyEC2RDX:  v.LegacyEC2RDX,
			})
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got[:]) != v.Measurement {
				t.Errorf("measurement %x, want %s (%s)", got, v.Measurement, v.Source)
			}
		})
	}
}

// gceCleanExample builds the 4 KiB test firmware that google/gce-tcb-verifier describes in
// testing/ovmfsev (CleanExample) and in the Python recipe of its sev_test.go: "LGTM"×4 at 0x800
// and 0xa00; the SEV metadata ("ASEV", three sections) at offset 0; at the end, 0x20 bytes above
// the image end, the GUID table of the metadata offset (0x1000), the SEV-ES reset block
// (0xff0000ff) and the footer entry.
func gceCleanExample() []byte {
	fw := make([]byte, 0x1000)
	copy(fw[0x800:], "LGTMLGTMLGTMLGTM")
	copy(fw[0xa00:], "LGTMLGTMLGTMLGTM")
	copy(fw, "ASEV")
	binary.LittleEndian.PutUint32(fw[4:], 16+3*12)
	binary.LittleEndian.PutUint32(fw[8:], 1)
	binary.LittleEndian.PutUint32(fw[12:], 3)
	for i, s := range []Section{
		{0xff001000, 0x1000, SectionSNPSecMem},
		{0xff003000, 0x1000, SectionCPUID},
		{0xff004000, 0x1000, SectionSNPSecrets},
	} {
		it := fw[16+12*i:]
		binary.LittleEndian.PutUint32(it[0:], s.GPA)
		binary.LittleEndian.PutUint32(it[4:], s.Size)
		binary.LittleEndian.PutUint32(it[8:], uint32(s.Type))
	}
	const entry = 4 + tableEntryHeader
	end := len(fw) - 0x20
	footer := fw[end-tableEntryHeader : end]
	binary.LittleEndian.PutUint16(footer, tableEntryHeader+2*entry)
	copy(footer[2:], guidFooterTable[:])
	put := func(at int, v uint32, g guid) {
		e := fw[at : at+entry]
		binary.LittleEndian.PutUint32(e, v)
		binary.LittleEndian.PutUint16(e[4:], entry)
		copy(e[6:], g[:])
	}
	put(end-tableEntryHeader-entry, 0xff0000ff, guidSEVESReset)
	put(end-tableEntryHeader-2*entry, uint32(len(fw)), guidSEVMetadata)
	return fw
}

// TestGCEVectors reproduces google/gce-tcb-verifier's sev package tests: TestLaunchDigest (one
// vCPU) and TestUnsignedSnp (the 4-VMSA measurement of its endorsement), both on the clean
// example firmware, GCE register state, SEV features 0x1. The 4-vCPU case exercises GCE's AP
// VMSA at the reset block's 0xff0000ff.
func TestGCEVectors(t *testing.T) {
	fw, err := ParseOVMF(gceCleanExample())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		vcpus int
		want  string
	}{
		{"TestLaunchDigest/1vcpu", 1, "06843de00c62bb9a12fd870bd340e1af8b0ebf516e3fe04f5c9add43b7981a1df2e825b4c712fbd87c97b129eba2e6de"},
		{"TestUnsignedSnp/4vmsas", 4, "1a8cd8039cdcdcd1ec9800ca215ba5cbbed437697debf0b2fc1a9b873f1eb15f82dc7d5cf246dbee4df1bb9d3b6c7a16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := LaunchDigest(fw, Params{VCPUs: tc.vcpus, GuestFeatures: 1, VMM: VMMGCE})
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got[:]) != tc.want {
				t.Errorf("measurement %x, want %s", got, tc.want)
			}
		})
	}
}

// TestGCEBootVMSA compares the GCE boot vCPU's VMSA with the page that gce-tcb-verifier's
// sev_test.go spells out byte by byte (vmsaBytes): every non-zero byte of that page is listed
// here, by offset, and every other byte must be zero.
func TestGCEBootVMSA(t *testing.T) {
	want := make([]byte, pageSize)
	seg := func(off int, sel, attr uint16, limit uint32, base uint64) {
		binary.LittleEndian.PutUint16(want[off:], sel)
		binary.LittleEndian.PutUint16(want[off+2:], attr)
		binary.LittleEndian.PutUint32(want[off+4:], limit)
		binary.LittleEndian.PutUint64(want[off+8:], base)
	}
	seg(0x00, 0, 0x93, 0xffff, 0)               // es
	seg(0x10, 0xf000, 0x9b, 0xffff, 0xffff0000) // cs
	for _, off := range []int{0x20, 0x30, 0x40, 0x50} {
		seg(off, 0, 0x93, 0xffff, 0) // ss, ds, fs, gs
	}
	seg(0x60, 0, 0, 0xffff, 0)    // gdtr
	seg(0x70, 0, 0x82, 0xffff, 0) // ldtr
	seg(0x80, 0, 0, 0xffff, 0)    // idtr
	seg(0x90, 0, 0x8b, 0xffff, 0) // tr
	for off, v := range map[int]uint64{
		0xd0: 0x1000, 0x148: 0x40, 0x158: 0x10, 0x160: 0x400, 0x168: 0xffff0ff0, 0x170: 0x2,
		0x178: 0xfff0, 0x268: 0x70106, 0x310: 0x600, 0x3b0: 0x1, 0x3e8: 0x1,
	} {
		binary.LittleEndian.PutUint64(want[off:], v)
	}
	got := resetVMSA(bspEIP, 1, 0, VMMGCE, false)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("byte %#x = %#x, want %#x", i, got[i], want[i])
		}
	}
}
