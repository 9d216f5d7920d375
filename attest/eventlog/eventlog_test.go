package eventlog

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-eventlog/register"
	"github.com/google/go-eventlog/tcg"
)

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// expected reads a "NAME HEX" register file.
func expected(t testing.TB, path string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, line := range strings.Split(strings.TrimSpace(string(read(t, path))), "\n") {
		name, h, _ := strings.Cut(line, " ")
		v, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = v
	}
	return out
}

func quoted4(m map[string][]byte) [4][]byte {
	return [4][]byte{m["RTMR0"], m["RTMR1"], m["RTMR2"], m["RTMR3"]}
}

// eventOffsets lists the byte ranges of the events after the Spec ID event.
func eventOffsets(t testing.TB, raw []byte) [][2]int {
	t.Helper()
	sizes, err := specIDSizes(raw[32 : 32+int(raw[28])|int(raw[29])<<8])
	if err != nil {
		t.Fatal(err)
	}
	end, _, err := frame(raw)
	if err != nil {
		t.Fatal(err)
	}
	off := 32 + (int(raw[28]) | int(raw[29])<<8)
	var out [][2]int
	for off < end {
		next, err := frameEvent(raw, off, true, sizes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, [2]int{off, next})
		off = next
	}
	return out
}

func TestReplayTDXRealLogs(t *testing.T) {
	for _, tc := range []struct {
		log, want string
		dupSep    []string
	}{
		{"testdata/tdx/cos-113-intel-tdx.bin", "testdata/tdx/cos-113-intel-tdx.rtmrs", nil},
		{"testdata/tdx/cos-113-intel-tdx-dupe-separator.bin", "testdata/tdx/cos-113-intel-tdx-dupe-separator.rtmrs", []string{"RTMR0"}},
	} {
		t.Run(tc.log, func(t *testing.T) {
			raw := read(t, tc.log)
			want := expected(t, tc.want)
			r, err := ReplayTDX(raw)
			if err != nil {
				t.Fatal(err)
			}
			for _, reg := range r.RTMRs {
				if !bytes.Equal(reg.Value, want[reg.Name]) {
					t.Errorf("%s = %x, want %x", reg.Name, reg.Value, want[reg.Name])
				}
			}
			if err := r.Verify(quoted4(want)); err != nil {
				t.Error(err)
			}
			if r.Log.Padding != PaddingFF || r.Log.PaddingBytes == 0 {
				t.Errorf("padding %q, %d bytes", r.Log.Padding, r.Log.PaddingBytes)
			}
			if !slices.Equal(r.Components.DuplicateSeparators, tc.dupSep) {
				t.Errorf("duplicate separators %v, want %v", r.Components.DuplicateSeparators, tc.dupSep)
			}
			c := r.Components
			if c.SecureBoot == nil || *c.SecureBoot {
				t.Errorf("secure boot %v, want recorded off", c.SecureBoot)
			}
			if c.Kernel == nil || c.Kernel.Description != "/syslinux/vmlinuz.A" || c.Kernel.Register != "RTMR2" {
				t.Errorf("kernel %+v", c.Kernel)
			}
			if c.Cmdline == nil || !strings.Contains(c.Cmdline.Description, "dm_verity.error_behavior=3") {
				t.Errorf("cmdline %+v", c.Cmdline)
			}
			if len(c.Bootloaders) != 2 || c.Bootloaders[1].Kind != "grub" {
				t.Errorf("bootloaders %+v", c.Bootloaders)
			}
			// go-eventlog's own replay agrees with ours on the same registers.
			bank := register.RTMRBank{}
			for i := 0; i < 3; i++ {
				bank.RTMRs = append(bank.RTMRs, register.RTMR{Index: i, Digest: r.RTMRs[i].Value})
			}
			if _, err := tcg.ParseAndReplay(raw, bank.MRs(), tcg.ParseOpts{AllowPadding: true}); err != nil {
				t.Errorf("go-eventlog replay: %v", err)
			}
		})
	}
}

func TestCCELTable(t *testing.T) {
	tbl, err := ParseCCELTable(read(t, "testdata/tdx/cos-113-intel-tdx.table.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if tbl.CCType != CCTypeTDX || tbl.LAML != 0x40000 {
		t.Errorf("table %+v", tbl)
	}
	if err := tbl.CheckTDXLog(len(read(t, "testdata/tdx/cos-113-intel-tdx.bin"))); err != nil {
		t.Error(err)
	}
	small, err := ParseCCELTable(read(t, "testdata/tdx/ccel-64k.table.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := small.CheckTDXLog(0x40000); err == nil || !strings.Contains(err.Error(), "exceeds the CCEL log area") {
		t.Errorf("oversized log: %v", err)
	}
	good := read(t, "testdata/tdx/cos-113-intel-tdx.table.bin")
	for name, mutate := range map[string]func([]byte) []byte{
		"signature": func(b []byte) []byte { b[0] = 'X'; return b },
		"checksum":  func(b []byte) []byte { b[40]++; return b },
		"short":     func(b []byte) []byte { return b[:40] },
		"length":    func(b []byte) []byte { b[4] = 200; return b },
	} {
		if _, err := ParseCCELTable(mutate(bytes.Clone(good))); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	sev := bytes.Clone(good)
	sev[36], sev[9] = 1, sev[9]+1 // CC type SEV, checksum kept
	tb, err := ParseCCELTable(sev)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.CheckTDXLog(10); err == nil || !strings.Contains(err.Error(), "CC type 1") {
		t.Errorf("SEV table: %v", err)
	}
}

// TestTamperedTDXLogs: a changed event, a reordered log and a truncated log do not replay to
// the quote, and the error names the register.
func TestTamperedTDXLogs(t *testing.T) {
	raw := read(t, "testdata/tdx/cos-113-intel-tdx.bin")
	want := quoted4(expected(t, "testdata/tdx/cos-113-intel-tdx.rtmrs"))
	log, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	offs := eventOffsets(t, raw)
	if len(offs) != len(log.Events) {
		t.Fatalf("%d framed events, %d parsed", len(offs), len(log.Events))
	}
	// Events of RTMR2 (CC MR index 3), in log order.
	var rtmr2 []int
	for i, e := range log.Events {
		if e.Index == 3 && e.Type != evNoAction {
			rtmr2 = append(rtmr2, i)
		}
	}
	a, b := offs[rtmr2[1]], offs[rtmr2[2]]
	swapped := slices.Concat(raw[:a[0]], raw[b[0]:b[1]], raw[a[1]:b[0]], raw[a[0]:a[1]], raw[b[1]:])

	changed := bytes.Clone(raw)
	changed[offs[rtmr2[0]][0]+14] ^= 1 // first byte of the event's SHA-384 digest, after index, type, count, alg

	last := offs[len(offs)-1]
	for _, tc := range []struct {
		name, register string
		log            []byte
	}{
		{"changed event", "RTMR2", changed},
		{"reordered events", "RTMR2", swapped},
		{"last event dropped", tdxName(log.Events[len(log.Events)-1].Index), append(bytes.Clone(raw[:last[0]]), bytes.Repeat([]byte{0xff}, len(raw)-last[0])...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ReplayTDX(tc.log)
			if err != nil {
				t.Fatal(err)
			}
			err = r.Verify(want)
			var m *MismatchError
			if !errors.As(err, &m) || m.Register != tc.register {
				t.Fatalf("error %v, want a mismatch of %s", err, tc.register)
			}
			if !strings.Contains(err.Error(), tc.register) {
				t.Errorf("error %q does not name %s", err, tc.register)
			}
		})
	}
	t.Run("cut mid-event", func(t *testing.T) {
		_, err := ReplayTDX(raw[:last[0]+20])
		if err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("error %v, want truncated", err)
		}
	})
}

func tdxName(i uint32) string { return tdxRegisterName(i) }

// TestPadding: 0xFF and zero padding end the log; no padding is fine; anything else is an error.
func TestPadding(t *testing.T) {
	raw := read(t, "testdata/tdx/cos-113-intel-tdx.bin")
	want := quoted4(expected(t, "testdata/tdx/cos-113-intel-tdx.rtmrs"))
	end, _, err := frame(raw)
	if err != nil {
		t.Fatal(err)
	}
	zero := append(bytes.Clone(raw[:end]), make([]byte, len(raw)-end)...)
	for _, tc := range []struct {
		name  string
		log   []byte
		pad   Padding
		bytes int
		err   string
	}{
		{"0xff", raw, PaddingFF, len(raw) - end, ""},
		{"zeros", zero, PaddingZero, len(raw) - end, ""},
		{"none", raw[:end], PaddingNone, 0, ""},
		{"one zero byte", append(bytes.Clone(raw[:end]), 0), PaddingZero, 1, ""},
		{"mixed padding", append(bytes.Clone(raw[:end]), 0, 0, 0xff, 0xff), "", 0, "truncated or malformed"},
		{"garbage after zeros", append(bytes.Clone(zero), 1), "", 0, "event at offset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ReplayTDX(tc.log)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Log.Padding != tc.pad || r.Log.PaddingBytes != tc.bytes {
				t.Errorf("padding %q/%d, want %q/%d", r.Log.Padding, r.Log.PaddingBytes, tc.pad, tc.bytes)
			}
			if err := r.Verify(want); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestReplayTPMRealLogs(t *testing.T) {
	for _, name := range []string{"rhel8-uefi", "ubuntu-2404-amd-sevsnp"} {
		t.Run(name, func(t *testing.T) {
			raw := read(t, "testdata/tpm/"+name+".bin")
			want := expected(t, "testdata/tpm/"+name+".pcrs")
			r, err := ReplayTPM(raw)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.PCRs) != len(want) {
				t.Errorf("%d PCRs replayed, want %d", len(r.PCRs), len(want))
			}
			for _, p := range r.PCRs {
				if !bytes.Equal(p.Value, want[p.Name]) {
					t.Errorf("%s = %x, want %x", p.Name, p.Value, want[p.Name])
				}
			}
			if err := r.Verify(want); err != nil {
				t.Error(err)
			}
			// A PCR the quote covers but the log never extends must be at its reset value.
			extra := map[string][]byte{"sha256:10": make([]byte, 32)}
			if err := r.Verify(extra); err != nil {
				t.Error(err)
			}
			extra["sha256:10"] = bytes.Repeat([]byte{1}, 32)
			var m *MismatchError
			if err := r.Verify(extra); !errors.As(err, &m) || m.Register != "sha256:10" {
				t.Errorf("unextended PCR: %v", err)
			}
			bad := map[string][]byte{"sha256:4": want["sha256:7"]}
			if err := r.Verify(bad); !errors.As(err, &m) || m.Register != "sha256:4" {
				t.Errorf("mismatch: %v", err)
			}
			if r.Components.SecureBoot == nil {
				t.Error("secure boot state not recorded")
			}
		})
	}
	r, err := ReplayTPM(read(t, "testdata/tpm/ubuntu-2404-amd-sevsnp.bin"))
	if err != nil {
		t.Fatal(err)
	}
	c := r.Components
	if c.Kernel == nil || c.Kernel.Description != "/vmlinuz-6.8.0-1010-gcp" {
		t.Errorf("kernel %+v", c.Kernel)
	}
	if c.Cmdline == nil || c.Cmdline.Description != "/vmlinuz-6.8.0-1010-gcp root=PARTUUID=8270f3c9-b4e4-4345-80ee-5a62db7ebf3f ro console=ttyS0,115200 panic=-1" {
		t.Errorf("cmdline %+v", c.Cmdline)
	}
	if c.LoadOptions == nil || c.LoadOptions.Register != "PCR9" {
		t.Errorf("load options %+v", c.LoadOptions)
	}
	if !slices.ContainsFunc(c.Bootloaders, func(m Measurement) bool { return m.Kind == "shim" }) {
		t.Errorf("no shim in %+v", c.Bootloaders)
	}
}

func TestReplayTPMErrors(t *testing.T) {
	tdx := read(t, "testdata/tdx/cos-113-intel-tdx.bin")
	if _, err := ReplayTPM(tdx); err == nil || !strings.Contains(err.Error(), "no SHA-1 or SHA-256 bank") {
		t.Errorf("CCEL as TPM log: %v", err)
	}
	tpm := read(t, "testdata/tpm/rhel8-uefi.bin")
	if _, err := ReplayTDX(tpm); err == nil || !strings.Contains(err.Error(), "CC MR index 0") {
		t.Errorf("TPM log as CCEL: %v", err)
	}
	for _, b := range [][]byte{nil, {1, 2, 3}, bytes.Repeat([]byte{1}, 40)} {
		if _, err := Parse(b); err == nil {
			t.Errorf("Parse(%x): no error", b)
		}
	}
}

func TestHashesUsed(t *testing.T) {
	r, err := ReplayTPM(read(t, "testdata/tpm/rhel8-uefi.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Log.Algs, []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384}) {
		t.Errorf("algs %v", r.Log.Algs)
	}
}

func FuzzParse(f *testing.F) {
	tdx := read(f, "testdata/tdx/cos-113-intel-tdx.bin")
	end, _, _ := frame(tdx)
	f.Add(tdx[:end+64])
	f.Add(read(f, "testdata/tpm/ubuntu-2404-amd-sevsnp.bin")[:4096])
	f.Add(read(f, "testdata/tdx/cos-113-intel-tdx.table.bin"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := ReplayTDX(b); err == nil {
			_ = r.Verify([4][]byte{})
		}
		if r, err := ReplayTPM(b); err == nil {
			_ = r.Verify(map[string][]byte{"sha256:0": nil})
		}
		_, _ = ParseCCELTable(b)
	})
}

// TestAppraiseKeepsWhatTheQuoteBacks: a TPM signs whatever PCR selection it is asked for, so a
// quote that leaves a PCR out leaves that PCR's events unchecked. Appraise draws components only
// from the quoted PCRs of the quoted bank; a quote of one untouched PCR (which passes, being at
// its reset value) must not turn a log's kernel, shim and command line into claims.
func TestAppraiseKeepsWhatTheQuoteBacks(t *testing.T) {
	raw := read(t, "testdata/tpm/ubuntu-2404-amd-sevsnp.bin")
	all := expected(t, "testdata/tpm/ubuntu-2404-amd-sevsnp.pcrs")
	r, err := ReplayTPM(raw)
	if err != nil {
		t.Fatal(err)
	}
	bank := func(prefix string, only ...string) map[string][]byte {
		out := map[string][]byte{}
		for n, v := range all {
			if strings.HasPrefix(n, prefix) && (len(only) == 0 || slices.Contains(only, n)) {
				out[n] = v
			}
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		quoted map[string][]byte
		want   []string // the Digests names
	}{
		{"the whole SHA-256 bank", bank("sha256:"), []string{"cmdline", "kernel", "shim", "grub"}},
		{"the whole SHA-1 bank", bank("sha1:"), []string{"cmdline", "kernel", "shim", "grub"}},
		{"both banks", all, []string{"cmdline", "kernel", "shim", "grub"}},
		{"PCR 7 only", bank("sha256:", "sha256:7"), nil},
		{"PCRs 8 and 9 only", bank("sha256:", "sha256:8", "sha256:9"), []string{"cmdline", "kernel"}},
		{"an untouched PCR only", map[string][]byte{"sha256:16": make([]byte, 32)}, nil},
		{"nothing", map[string][]byte{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := r.Appraise(tc.quoted)
			if err != nil {
				t.Fatal(err)
			}
			d := c.Digests()
			for _, n := range tc.want {
				if len(d[n]) == 0 {
					t.Errorf("no %s in %v", n, slices.Sorted(maps.Keys(d)))
				}
			}
			if tc.want == nil && len(d) != 0 {
				t.Errorf("components from unquoted PCRs: %v", slices.Sorted(maps.Keys(d)))
			}
			for _, m := range slices.Concat(c.Bootloaders, c.Firmware, c.SecureBootVariables, c.UKISections) {
				if _, ok := tc.quoted["sha256:"+strings.TrimPrefix(m.Register, "PCR")]; !ok {
					if _, ok := tc.quoted["sha1:"+strings.TrimPrefix(m.Register, "PCR")]; !ok {
						t.Errorf("%s %s from unquoted %s", m.Event, m.Kind, m.Register)
					}
				}
			}
		})
	}
	// The digests are the quoted bank's.
	c256, _ := r.Appraise(bank("sha256:"))
	c1, _ := r.Appraise(bank("sha1:"))
	if len(c256.Kernel.Digest) != 64 || len(c1.Kernel.Digest) != 40 {
		t.Errorf("kernel digests %q (SHA-256 quote), %q (SHA-1 quote)", c256.Kernel.Digest, c1.Kernel.Digest)
	}
	// A mismatch still fails, as Verify does.
	bad := bank("sha256:")
	bad["sha256:4"] = bad["sha256:7"]
	var m *MismatchError
	if _, err := r.Appraise(bad); !errors.As(err, &m) || m.Register != "sha256:4" {
		t.Errorf("mismatch: %v", err)
	}
}

// TestComponentsOnlyFromTheirRegisters: firmware, shim, GRUB, the EFI stub and systemd-stub
// measure into fixed registers (PCR 4, 8, 9, 11; RTMR1, RTMR2 on TDX). A register the guest
// extends at will after boot (a resettable PCR such as 23 that a quote may select alone, or
// TDX's RTMR3) carries whatever events its owner likes: labelled as a kernel, shim or command
// line, they must not become those components.
func TestComponentsOnlyFromTheirRegisters(t *testing.T) {
	t.Run("TPM PCR 23", func(t *testing.T) {
		raw := bytes.Clone(read(t, "testdata/tpm/ubuntu-2404-amd-sevsnp.bin"))
		// The boot chain's events, moved into PCR 23: what root gets by resetting PCR 23 and
		// extending it with the approved digests, with a log that says so.
		for _, o := range eventOffsets(t, raw) {
			switch binary.LittleEndian.Uint32(raw[o[0]:]) {
			case 4, 8, 9:
				binary.LittleEndian.PutUint32(raw[o[0]:], 23)
			}
		}
		r, err := ReplayTPM(raw)
		if err != nil {
			t.Fatal(err)
		}
		var pcr23 []byte
		for _, p := range r.PCRs {
			if p.Name == "sha256:23" {
				pcr23 = p.Value
			}
		}
		c, err := r.Appraise(map[string][]byte{"sha256:23": pcr23})
		if err != nil {
			t.Fatal(err)
		}
		if d := c.Digests(); len(d) != 0 {
			t.Errorf("components from PCR 23: %v", slices.Sorted(maps.Keys(d)))
		}
	})
	t.Run("TDX RTMR3", func(t *testing.T) {
		raw := read(t, "testdata/tdx/cos-113-intel-tdx.bin")
		log, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		offs := eventOffsets(t, raw)
		var kernel [2]int
		for i, e := range log.Events {
			if e.Index == 3 && e.Type == tcg.Ipl && isKernelPath(decodeText(e.Data)) {
				kernel = offs[i]
			}
		}
		// The kernel's event again, in RTMR3 with another digest: what the guest gets by
		// extending RTMR3 after boot.
		ev := bytes.Clone(raw[kernel[0]:kernel[1]])
		binary.LittleEndian.PutUint32(ev, 4)
		for i := range 48 {
			ev[14+i] ^= 0x5a // the SHA-384 digest, after index, type, count, alg
		}
		end, _, err := frame(raw)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ReplayTDX(slices.Concat(raw[:end], ev))
		if err != nil {
			t.Fatal(err)
		}
		if k := r.Components.Kernel; k == nil || k.Register != "RTMR2" {
			t.Errorf("kernel %+v, want GRUB's in RTMR2", k)
		}
	})
}
