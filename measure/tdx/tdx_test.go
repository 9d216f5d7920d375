package tdx

import (
	"bytes"
	"crypto"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest/eventlog"
)

// TestAuthenticode checks the PE hash against osslsigncode 2.x: signing Go's own PE test binary
// (debug/pe testdata, padded to 8 bytes as osslsigncode pads before the certificate table) with
// -h sha384 records this "current message digest".
func TestAuthenticode(t *testing.T) {
	img, err := os.ReadFile(filepath.Join(goroot(t), "src/debug/pe/testdata/gcc-amd64-mingw-exec"))
	if err != nil {
		t.Skipf("Go's PE test data is not installed: %v", err)
	}
	if pad := len(img) % 8; pad != 0 {
		img = append(img, make([]byte, 8-pad)...)
	}
	got, err := Authenticode(img)
	if err != nil {
		t.Fatal(err)
	}
	const want = "625b4fcf501c87562635408eead5425f2c4ed28503d6709d05674023362b51407b8df1d0665c31f94660821ffeea2ea3"
	if hex.EncodeToString(got[:]) != want {
		t.Errorf("authenticode %x, want %s", got, want)
	}
	// The checksum field is not covered; the code is.
	pe := int(binary.LittleEndian.Uint32(img[0x3c:]))
	c := bytes.Clone(img)
	c[pe+24+64] ^= 0xff
	if g, _ := Authenticode(c); g != got {
		t.Error("checksum change altered the digest")
	}
	c = bytes.Clone(img)
	c[len(c)/2] ^= 0xff
	if g, _ := Authenticode(c); g == got {
		t.Error("section change left the digest unchanged")
	}
	for _, b := range [][]byte{nil, []byte("MZ"), img[:0x200], bytes.Repeat([]byte{0xff}, 4096)} {
		if _, err := Authenticode(b); err == nil {
			t.Errorf("Authenticode(%d bytes): no error", len(b))
		}
	}
}

// TestRTMR1ActionsMatchRealLog: the EV_EFI_ACTION and separator digests RTMR1 is built from are
// the ones a real TDVF measured (COS 113 TDX CCEL, attest/eventlog/testdata).
func TestRTMR1ActionsMatchRealLog(t *testing.T) {
	raw, err := os.ReadFile("../../attest/eventlog/testdata/tdx/cos-113-intel-tdx.bin")
	if err != nil {
		t.Fatal(err)
	}
	r, err := eventlog.ReplayTDX(raw)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range r.Log.Events {
		if e.Index != 2 || (e.Type != 0x80000007 && e.Type != 4) {
			continue
		}
		d := e.Digests[crypto.SHA384]
		switch {
		case bytes.Equal(d, sum([]byte(actionCallingEFIApp))):
			seen = append(seen, "calling")
		case bytes.Equal(d, sum([]byte{0, 0, 0, 0})):
			seen = append(seen, "separator")
		case bytes.Equal(d, sum([]byte(actionExitBS))):
			seen = append(seen, "exit")
		case bytes.Equal(d, sum([]byte(actionExitBSOK))):
			seen = append(seen, "exit-ok")
		default:
			t.Errorf("RTMR1 event %d (%s) has an unexpected digest %x", e.Seq, e.Type, d)
		}
	}
	if got := strings.Join(seen, ","); got != "calling,separator,exit,exit-ok" {
		t.Errorf("RTMR1 action order %s", got)
	}
}

func TestRTMR2(t *testing.T) {
	// The Linux EFI stub measures UTF-16LE with a NUL; the initrd as its SHA-384.
	cmd := "initrd=initrd console=ttyS0"
	u := []byte{}
	for _, c := range cmd + "\x00" {
		u = append(u, byte(c), 0)
	}
	want := Extend(sum(u), sum([]byte("ramdisk")))
	if got := RTMR2(DirectBootCmdline("console=ttyS0", true), []byte("ramdisk")); got != want {
		t.Errorf("RTMR2 %x, want %x", got, want)
	}
	// Extend is the TDX RTMR extend: SHA-384(old || digest) from zero.
	var zero [48]byte
	d := sum([]byte("x"))
	if got, want := Extend(d), sha512.Sum384(append(zero[:], d...)); got != want {
		t.Errorf("extend %x, want %x", got, want)
	}
}

type tdvfImage struct {
	sections []Section
	payload  int // bytes of image before the metadata
}

// build lays out a TDVF image: payload, descriptor and sections, footer table with the TDX
// metadata offset entry, footer GUID, 32 trailing bytes.
func (ti tdvfImage) build() []byte {
	img := make([]byte, ti.payload)
	for i := range img {
		img[i] = byte(i * 13)
	}
	desc := make([]byte, descriptorSize+sectionDescSize*len(ti.sections))
	copy(desc, "TDVF")
	binary.LittleEndian.PutUint32(desc[4:], uint32(len(desc)))
	binary.LittleEndian.PutUint32(desc[8:], 1)
	binary.LittleEndian.PutUint32(desc[12:], uint32(len(ti.sections)))
	for i, s := range ti.sections {
		b := desc[descriptorSize+i*sectionDescSize:]
		binary.LittleEndian.PutUint32(b[0:], s.DataOffset)
		binary.LittleEndian.PutUint32(b[4:], s.RawDataSize)
		binary.LittleEndian.PutUint64(b[8:], s.MemoryAddress)
		binary.LittleEndian.PutUint64(b[16:], s.MemoryDataSize)
		binary.LittleEndian.PutUint32(b[24:], s.Type)
		binary.LittleEndian.PutUint32(b[28:], s.Attributes)
	}
	img = append(img, desc...)
	entry := make([]byte, 4+tableEntryHdr)
	footer := make([]byte, tableEntryHdr)
	total := len(img) + len(entry) + len(footer) + footerTrailer
	binary.LittleEndian.PutUint32(entry, uint32(total-ti.payload))
	binary.LittleEndian.PutUint16(entry[4:], uint16(len(entry)))
	copy(entry[6:], guidTDXMetadata[:])
	binary.LittleEndian.PutUint16(footer, uint16(len(entry)+len(footer)))
	copy(footer[2:], guidFooter[:])
	img = append(append(img, entry...), footer...)
	return append(img, make([]byte, footerTrailer)...)
}

var sample = tdvfImage{payload: 3 * pageSize, sections: []Section{
	{DataOffset: 0, RawDataSize: 2 * pageSize, MemoryAddress: 0xffe00000, MemoryDataSize: 2 * pageSize, Type: 0, Attributes: attrMRExtend},
	{DataOffset: 2 * pageSize, RawDataSize: pageSize, MemoryAddress: 0xffdff000, MemoryDataSize: pageSize, Type: 1},
	{MemoryAddress: 0x809000, MemoryDataSize: 2 * pageSize, Type: 2},
	{MemoryAddress: 0x900000, MemoryDataSize: pageSize, Type: 4, Attributes: attrPageAug},
}}

func TestMRTD(t *testing.T) {
	img := sample.build()
	tv, err := ParseTDVF(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(tv.Sections) != 4 {
		t.Fatalf("%d sections", len(tv.Sections))
	}
	add := func(gpa uint64) []byte { return block("MEM.PAGE.ADD", gpa) }
	ext := func(h []byte, gpa uint64, data []byte) []byte {
		for c := 0; c < pageSize; c += extendChunk {
			h = append(h, block("MR.EXTEND", gpa+uint64(c))...)
			h = append(h, data[c:c+extendChunk]...)
		}
		return h
	}
	var single, two []byte
	single = ext(append(single, add(0xffe00000)...), 0xffe00000, img[0:pageSize])
	single = ext(append(single, add(0xffe01000)...), 0xffe01000, img[pageSize:2*pageSize])
	two = append(append(two, add(0xffe00000)...), add(0xffe01000)...)
	two = ext(ext(two, 0xffe00000, img[0:pageSize]), 0xffe01000, img[pageSize:2*pageSize])
	rest := append(append(add(0xffdff000), add(0x809000)...), add(0x80a000)...)
	for _, tc := range []struct {
		order PageOrder
		data  []byte
	}{{SinglePass, append(single, rest...)}, {TwoPass, append(two, rest...)}} {
		if got, want := tv.MRTD(tc.order), sha512.Sum384(tc.data); got != want {
			t.Errorf("order %d: MRTD %x, want %x", tc.order, got, want)
		}
	}
	if tv.MRTD(SinglePass) == tv.MRTD(TwoPass) {
		t.Error("page orders should differ for a multi-page measured section")
	}
}

func TestParseTDVFErrors(t *testing.T) {
	bad := sample
	bad.sections = []Section{{DataOffset: 0, RawDataSize: pageSize, MemoryAddress: 0x1001, MemoryDataSize: pageSize}}
	outside := sample
	outside.sections = []Section{{DataOffset: 1 << 30, RawDataSize: pageSize, MemoryAddress: 0, MemoryDataSize: pageSize, Attributes: attrMRExtend}}
	for name, img := range map[string][]byte{
		"empty":     nil,
		"no footer": make([]byte, 8192),
		"unaligned": bad.build(),
		"outside":   outside.build(),
	} {
		if _, err := ParseTDVF(img); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzParseTDVF(f *testing.F) {
	f.Add(sample.build())
	f.Fuzz(func(t *testing.T, b []byte) {
		if tv, err := ParseTDVF(b); err == nil {
			tv.MRTD(SinglePass)
			tv.MRTD(TwoPass)
		}
		_, _ = Authenticode(b)
	})
}

var update = flag.Bool("update", false, "rewrite testdata/synthetic-tdvf.fd")

// TestSyntheticFixture keeps testdata/synthetic-tdvf.fd (used by the trustctl measure tdx golden
// test) equal to the image this file describes.
func TestSyntheticFixture(t *testing.T) {
	const path = "testdata/synthetic-tdvf.fd"
	want := sample.build()
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
		t.Fatal("testdata/synthetic-tdvf.fd is stale: go test ./measure/tdx -run Fixture -update")
	}
}

// goroot is the Go installation running the test, whose debug/pe test data holds a real PE file.
func goroot(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Skipf("go env GOROOT: %v", err)
	}
	return strings.TrimSpace(string(out))
}
