package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMeasureTDXDirectBoot runs measure tdx with a real PE image (Go's debug/pe test binary) as
// the kernel: three lines, MRTD unchanged by the kernel.
func TestMeasureTDXDirectBoot(t *testing.T) {
	kernel := filepath.Join(goroot(t), "src/debug/pe/testdata/gcc-amd64-mingw-exec")
	if _, err := os.Stat(kernel); err != nil {
		t.Skip(err)
	}
	initrd := filepath.Join(t.TempDir(), "initrd")
	if err := os.WriteFile(initrd, []byte("ramdisk"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	root := newRoot()
	root.SetOut(&out)
	root.SetArgs([]string{"measure", "tdx", "--tdvf", "../../measure/tdx/testdata/synthetic-tdvf.fd", "--kernel", kernel, "--initrd", initrd, "--cmdline", "console=ttyS0"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || lines[0] != "MRTD 59a4ed93779380d2ea0978eb0aa0723facd4884a12629dab55cb900361d3b69ea9a6f6b3d92e1f8bfca48bf78a44ac75" ||
		!strings.HasPrefix(lines[1], "RTMR1 ") || !strings.HasPrefix(lines[2], "RTMR2 ") || len(lines[1]) != 6+96 {
		t.Errorf("output %q", out.String())
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
