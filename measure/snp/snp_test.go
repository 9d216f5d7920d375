package snp

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"os"
	"strings"
	"testing"
)

// image describes a synthetic OVMF image: the footer table and SEV metadata laid out the way
// edk2's ResetVector lays them out, so the parser and the page order can be checked end to end.
type image struct {
	pages     int
	resetEIP  uint32
	hashesGPA uint32
	sections  []Section
	noFooter  bool
	svsmEntry uint32
}

func (im image) build() []byte {
	data := make([]byte, im.pages*pageSize)
	for i := range data {
		data[i] = byte(i*7 + i/4096)
	}
	if im.noFooter {
		return data
	}
	// SEV metadata at 8 KiB from the end.
	metaOff := 2 * pageSize
	meta := data[len(data)-metaOff:]
	copy(meta, "ASEV")
	binary.LittleEndian.PutUint32(meta[4:], uint32(16+12*len(im.sections)))
	binary.LittleEndian.PutUint32(meta[8:], 1)
	binary.LittleEndian.PutUint32(meta[12:], uint32(len(im.sections)))
	for i, s := range im.sections {
		it := meta[16+12*i:]
		binary.LittleEndian.PutUint32(it[0:], s.GPA)
		binary.LittleEndian.PutUint32(it[4:], s.Size)
		binary.LittleEndian.PutUint32(it[8:], uint32(s.Type))
	}
	entry := func(g guid, v uint32) []byte {
		e := make([]byte, 4+tableEntryHeader)
		binary.LittleEndian.PutUint32(e, v)
		binary.LittleEndian.PutUint16(e[4:], uint16(len(e)))
		copy(e[6:], g[:])
		return e
	}
	var table []byte
	table = append(table, entry(guidSEVMetadata, uint32(metaOff))...)
	table = append(table, entry(guidSEVESReset, im.resetEIP)...)
	if im.hashesGPA != 0 {
		table = append(table, entry(guidSEVHashTable, im.hashesGPA)...)
	}
	if im.svsmEntry != 0 {
		table = append(table, entry(guidSVSMInfo, im.svsmEntry)...)
	}
	footer := make([]byte, tableEntryHeader)
	binary.LittleEndian.PutUint16(footer, uint16(len(table)+tableEntryHeader))
	copy(footer[2:], guidFooterTable[:])
	end := len(data) - 32
	copy(data[end-tableEntryHeader:], footer)
	copy(data[end-tableEntryHeader-len(table):], table)
	return data
}

var amdSev = image{
	pages:     16,
	resetEIP:  0x80b004,
	hashesGPA: 0x80c400,
	sections: []Section{
		{0x800000, 0x9000, SectionSNPSecMem},
		{0x80d000, 0x1000, SectionSNPSecrets},
		{0x80e000, 0x1000, SectionCPUID},
		{0x80c000, 0x1000, SectionSNPKernelHashes},
		{0x80f000, 0x1000, SectionSVSMCAA},
	},
}

func mustParse(t *testing.T, im image) *Firmware {
	t.Helper()
	fw, err := ParseOVMF(im.build())
	if err != nil {
		t.Fatal(err)
	}
	return fw
}

// reference recomputes a launch digest from first principles (SEV-SNP ABI PAGE_INFO), written
// independently of gctx.go: a list of (type, gpa, contents) in measurement order.
type step struct {
	typ      byte
	gpa      uint64
	contents []byte // nil: 48 zero bytes
}

func referenceDigest(steps []step) [48]byte {
	var ld [48]byte
	for _, s := range steps {
		var b bytes.Buffer
		b.Write(ld[:])
		c := s.contents
		if c == nil {
			c = make([]byte, 48)
		}
		b.Write(c)
		binary.Write(&b, binary.LittleEndian, uint16(0x70))
		b.Write([]byte{s.typ, 0, 0, 0, 0, 0})
		binary.Write(&b, binary.LittleEndian, s.gpa)
		ld = sha512.Sum384(b.Bytes())
	}
	return ld
}

func pageSteps(gpa uint64, data []byte) []step {
	var out []step
	for off := 0; off < len(data); off += pageSize {
		h := sha512.Sum384(data[off : off+pageSize])
		out = append(out, step{1, gpa + uint64(off), h[:]})
	}
	return out
}

func TestLaunchDigestPageOrder(t *testing.T) {
	raw := amdSev.build()
	fw := mustParse(t, amdSev)
	boot := &DirectBoot{Kernel: []byte("kernel"), Initrd: []byte("initrd"), Cmdline: "console=ttyS0"}
	for _, tc := range []struct {
		name  string
		vmm   VMMType
		boot  *DirectBoot
		vcpus int
	}{
		{"qemu", VMMQEMU, nil, 1},
		{"qemu-kernel-4vcpu", VMMQEMU, boot, 4},
		{"ec2", VMMEC2, nil, 2},
		{"gce", VMMGCE, boot, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig := VCPUTypes["EPYC-v4"]
			steps := pageSteps(fw.GPA(), raw)
			secMem := byte(3)
			if tc.vmm == VMMGCE {
				secMem = 4
			}
			for off := uint64(0); off < 0x9000; off += pageSize {
				steps = append(steps, step{secMem, 0x800000 + off, nil})
			}
			steps = append(steps, step{5, 0x80d000, nil})
			if tc.vmm != VMMEC2 {
				steps = append(steps, step{6, 0x80e000, nil})
			}
			if tc.boot != nil {
				page := make([]byte, pageSize)
				copy(page[0x400:], SEVHashesTable(tc.boot))
				steps = append(steps, pageSteps(0x80c000, page)...)
			} else {
				steps = append(steps, step{3, 0x80c000, nil})
			}
			steps = append(steps, step{3, 0x80f000, nil})
			if tc.vmm == VMMEC2 {
				steps = append(steps, step{6, 0x80e000, nil})
			}
			for i := 0; i < tc.vcpus; i++ {
				eip := uint32(bspEIP)
				if i > 0 {
					eip = amdSev.resetEIP
				}
				h := sha512.Sum384(resetVMSA(eip, 1, sig, tc.vmm, false))
				steps = append(steps, step{2, 0xFFFFFFFFF000, h[:]})
			}
			want := referenceDigest(steps)
			got, err := LaunchDigest(fw, Params{VCPUs: tc.vcpus, VCPUSig: sig, GuestFeatures: 1, VMM: tc.vmm, Boot: tc.boot})
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("digest %x, want %x", got, want)
			}
			// Precomputed OVMF hash gives the same result (mode snp with --snp-ovmf-hash).
			oh, err := OVMFHash(fw)
			if err != nil {
				t.Fatal(err)
			}
			got2, err := LaunchDigest(fw, Params{VCPUs: tc.vcpus, VCPUSig: sig, GuestFeatures: 1, VMM: tc.vmm, Boot: tc.boot, OVMFHash: oh[:]})
			if err != nil || got2 != want {
				t.Errorf("with OVMF hash: %x, %v; want %x", got2, err, want)
			}
		})
	}
}

// TestVMSALayout pins register offsets to AMD APM vol. 2 table B-4 and the reset state QEMU, EC2
// and GCE give a vCPU.
func TestVMSALayout(t *testing.T) {
	u64 := func(p []byte, off int) uint64 { return binary.LittleEndian.Uint64(p[off:]) }
	u16 := func(p []byte, off int) uint16 { return binary.LittleEndian.Uint16(p[off:]) }
	for _, tc := range []struct {
		name                          string
		vmm                           VMMType
		eip                           uint32
		csAttr, ssAttr, trAttr        uint16
		csBase, rip, rdx, gpat, mxcsr uint64
		fcw                           uint16
	}{
		{"qemu-bsp", VMMQEMU, bspEIP, 0x9b, 0x93, 0x8b, 0xffff0000, 0xfff0, 0x800f12, defaultPAT, 0x1f80, 0x37f},
		{"qemu-ap", VMMQEMU, 0x80b004, 0x9b, 0x93, 0x8b, 0x800000, 0xb004, 0x800f12, defaultPAT, 0x1f80, 0x37f},
		{"ec2-bsp", VMMEC2, bspEIP, 0x9a, 0x92, 0x83, 0xffff0000, 0xfff0, 0x600, defaultPAT, 0, 0},
		{"ec2-ap", VMMEC2, 0x80b004, 0x9b, 0x92, 0x83, 0x800000, 0xb004, 0x600, defaultPAT, 0, 0},
		{"gce-bsp", VMMGCE, bspEIP, 0x9b, 0x93, 0x8b, 0xffff0000, 0xfff0, 0x600, 0x70106, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := resetVMSA(tc.eip, 0x21, CPUSig(23, 1, 2), tc.vmm, false)
			if len(p) != 4096 {
				t.Fatalf("len %d", len(p))
			}
			checks := []struct {
				field     string
				got, want uint64
			}{
				{"cs.selector", uint64(u16(p, 0x10)), 0xf000},
				{"cs.attrib", uint64(u16(p, 0x12)), uint64(tc.csAttr)},
				{"cs.base", u64(p, 0x18), tc.csBase},
				{"ss.attrib", uint64(u16(p, 0x22)), uint64(tc.ssAttr)},
				{"tr.attrib", uint64(u16(p, 0x92)), uint64(tc.trAttr)},
				{"efer", u64(p, 0xd0), 0x1000},
				{"cr4", u64(p, 0x148), 0x40},
				{"cr0", u64(p, 0x158), 0x10},
				{"dr6", u64(p, 0x168), 0xffff0ff0},
				{"rip", u64(p, 0x178), tc.rip},
				{"g_pat", u64(p, 0x268), tc.gpat},
				{"rdx", u64(p, 0x310), tc.rdx},
				{"sev_features", u64(p, 0x3b0), 0x21},
				{"xcr0", u64(p, 0x3e8), 1},
				{"mxcsr", uint64(binary.LittleEndian.Uint32(p[0x408:])), tc.mxcsr},
				{"x87_fcw", uint64(u16(p, 0x410)), uint64(tc.fcw)},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %#x, want %#x", c.field, c.got, c.want)
				}
			}
		})
	}
}

func TestCPUSig(t *testing.T) {
	for name, want := range map[string]uint32{"EPYC-v4": 0x800f12, "EPYC-Milan": 0xa00f11, "EPYC-Genoa": 0xa10f10, "EPYC-Turin": 0xb00f00, "EPYC-Rome": 0x830f10} {
		if got := VCPUTypes[name]; got != want {
			t.Errorf("%s: %#x, want %#x", name, got, want)
		}
	}
}

func TestSEVHashesTable(t *testing.T) {
	tbl := SEVHashesTable(&DirectBoot{})
	if len(tbl) != 176 || binary.LittleEndian.Uint16(tbl[16:]) != 168 {
		t.Fatalf("table length %d / %d", len(tbl), binary.LittleEndian.Uint16(tbl[16:]))
	}
	// GUID of the header in UEFI byte order: 9438d606-4f22-4cc9-b479-a793d411fd21.
	if got := hex.EncodeToString(tbl[:16]); got != "06d63894224fc94cb479a793d411fd21" {
		t.Errorf("header guid %s", got)
	}
	// Empty command line hashes as a single NUL, empty initrd as the empty string.
	if got := hex.EncodeToString(tbl[18+18 : 18+50]); got != "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d" {
		t.Errorf("cmdline hash %s", got)
	}
}

func TestSVSM(t *testing.T) {
	ovmf := mustParse(t, image{pages: 4, resetEIP: 0x1000})
	svsmImg := image{pages: 8, resetEIP: 0, svsmEntry: 0x100, sections: []Section{{0x2000, 0x1000, SectionSVSMCAA}}}.build()
	varsSize := uint64(0x84000)
	got, err := SVSMLaunchDigest(ovmf, svsmImg, varsSize, 2, VCPUTypes["EPYC-v4"])
	if err != nil {
		t.Fatal(err)
	}
	svsmGPA := ovmf.GPA() - varsSize - uint64(len(svsmImg))
	steps := append(pageSteps(ovmf.GPA(), ovmf.data), pageSteps(svsmGPA, svsmImg)...)
	steps = append(steps, step{3, 0x2000, nil})
	v := svsmVMSA(svsmGPA+0x100, VCPUTypes["EPYC-v4"])
	if binary.LittleEndian.Uint64(v[0x178:]) != svsmGPA+0x100 || binary.LittleEndian.Uint64(v[0x158:]) != 0x11 {
		t.Fatal("svsm vmsa rip/cr0")
	}
	h := sha512.Sum384(v)
	steps = append(steps, step{2, vmsaGPA, h[:]}, step{2, vmsaGPA, h[:]})
	if want := referenceDigest(steps); got != want {
		t.Errorf("digest %x, want %x", got, want)
	}
}

func TestErrors(t *testing.T) {
	noHashes := amdSev
	noHashes.sections = amdSev.sections[:3]
	badType := amdSev
	badType.sections = []Section{{0x800000, 0x1000, 7}}
	for _, tc := range []struct {
		name string
		data []byte
		p    Params
		want string
	}{
		{"not pages", make([]byte, 100), Params{VCPUs: 1}, "multiple of 4 KiB"},
		{"no footer", image{pages: 4, noFooter: true}.build(), Params{VCPUs: 1}, "reset block"},
		{"kernel without hashes section", noHashes.build(), Params{VCPUs: 1, Boot: &DirectBoot{}}, "SNP_KERNEL_HASHES"},
		{"unknown section", badType.build(), Params{VCPUs: 1}, "section type 7"},
		{"zero vcpus", amdSev.build(), Params{VCPUs: 0}, "vcpus"},
		{"short ovmf hash", amdSev.build(), Params{VCPUs: 1, OVMFHash: []byte{1}}, "OVMF hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fw, err := ParseOVMF(tc.data)
			if err == nil {
				_, err = LaunchDigest(fw, tc.p)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func FuzzParseOVMF(f *testing.F) {
	f.Add(amdSev.build())
	f.Add(image{pages: 3}.build())
	f.Fuzz(func(t *testing.T, data []byte) {
		fw, err := ParseOVMF(data)
		if err != nil {
			return
		}
		_, _ = LaunchDigest(fw, Params{VCPUs: 2, Boot: &DirectBoot{}})
		_, _ = SVSMLaunchDigest(fw, data, 0, 1, 0)
	})
}

var update = flag.Bool("update", false, "rewrite the synthetic firmware images in testdata")

// amdSevSuffixLayout carries the footer table and SEV metadata of sev-snp-measure's
// tests/fixtures/ovmf_AmdSev_suffix.bin (see testdata/README.md) in synthetic pages: with that
// fixture's OVMF hash it reproduces the upstream digests (TestUpstreamVectors, and trustctl's
// TestMeasureSNPUpstreamVectors through the command line).
var amdSevSuffixLayout = image{
	pages:     4,
	resetEIP:  0x80b004,
	hashesGPA: 0x810c00,
	sections: []Section{
		{0x800000, 0x9000, SectionSNPSecMem},
		{0x80a000, 0x3000, SectionSNPSecMem},
		{0x80d000, 0x1000, SectionSNPSecrets},
		{0x80e000, 0x1000, SectionCPUID},
		{0x80f000, 0x1000, SectionSVSMCAA},
		{0x810000, 0x1000, SectionSNPKernelHashes},
		{0x811000, 0xf000, SectionSNPSecMem},
	},
}

// TestSyntheticFixture keeps the images in testdata (used by the trustctl measure tests) equal to
// the images this file describes.
func TestSyntheticFixture(t *testing.T) {
	for path, im := range map[string]image{
		"testdata/synthetic-amdsev.fd":     amdSev,
		"testdata/amdsev-suffix-layout.fd": amdSevSuffixLayout,
	} {
		want := im.build()
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: go test ./measure/snp -run Fixture -update", path)
		}
	}
}
