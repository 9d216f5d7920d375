package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMeasureSNPUpstreamVectors runs measure snp with sev-snp-measure's own arguments from its
// tests/test_guest.py (the AmdSev-suffix fixture, given by its OVMF hash and, in
// amdsev-suffix-layout.fd, its metadata; see measure/snp/testdata/README.md) and expects that
// tool's published digests. /dev/null kernel and initrd become empty files.
func TestMeasureSNPUpstreamVectors(t *testing.T) {
	const ovmfHash = "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74"
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"measure", "snp", "--ovmf", "../../measure/snp/testdata/amdsev-suffix-layout.fd",
		"--vcpu-type", "EPYC-v4", "--snp-ovmf-hash", ovmfHash}
	direct := []string{"--kernel", empty, "--initrd", empty}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"test_snp_ovmf_hash_gen_default", append([]string{"--vcpus", "1", "--guest-features", "0x21", "--append", ""}, direct...),
			"329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198"},
		{"test_snp_guest_feature_snp_only", append([]string{"--vcpus", "1", "--append", "console=ttyS0 loglevel=7"}, direct...),
			"6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa"},
		{"test_snp_without_kernel_feature_snp_only", []string{"--vcpus", "1", "--guest-features", "0x1"},
			"19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d"},
		{"test_snp_with_multiple_vcpus_default", append([]string{"--vcpus", "4", "--guest-features", "0x21"}, direct...),
			"4953b1fb416fa874980e8442b3706d345926d5f38879134e00813c5d7abcbe78eafe7b422907be0b4698e2414a631942"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			root := newRoot()
			root.SetOut(&out)
			root.SetArgs(append(append([]string{}, base...), tc.args...))
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(out.String()); got != tc.want {
				t.Errorf("measure snp printed %s, want %s", got, tc.want)
			}
		})
	}
}
