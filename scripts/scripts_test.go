// Package scripts_test checks the repository scripts that `make test` runs.
package scripts_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// check-large-files.sh (run by make test) refuses any tracked file over 1 MiB outside testdata/.
func TestCheckLargeFiles(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	script, err := filepath.Abs("check-large-files.sh")
	if err != nil {
		t.Fatal(err)
	}
	const mib = 1 << 20
	tests := []struct {
		name  string
		files map[string]int // path -> size
		want  string         // "" for success, else a path the failure names
	}{
		{"small files", map[string]int{"main.go": 100, "a/b.txt": mib}, ""},
		{"large testdata", map[string]int{"testdata/big.bin": 2 * mib, "attest/sgx/testdata/q/x": mib + 1}, ""},
		{"binary at the root", map[string]int{"trustctl": mib + 1, "ok.go": 10}, "trustctl"},
		{"nested", map[string]int{"cmd/x/out file.bin": 3 * mib}, "cmd/x/out file.bin"},
		{"testdata as a name prefix only", map[string]int{"testdata-old/big": 2 * mib}, "testdata-old/big"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			git(t, dir, "init", "-q")
			for p, n := range tt.files {
				if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, p), bytes.Repeat([]byte{'x'}, n), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			git(t, dir, "add", "-A")
			// An untracked large file is not the repository's business.
			if err := os.WriteFile(filepath.Join(dir, "untracked.bin"), make([]byte, 2*mib), 0o644); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd := exec.Command("bash", script, dir)
			cmd.Stderr = &stderr
			err := cmd.Run()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v\n%s", err, stderr.String())
				}
				return
			}
			if err == nil || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("err %v, stderr %q: want a failure naming %q", err, stderr.String(), tt.want)
			}
			if strings.Contains(stderr.String(), "untracked.bin") {
				t.Errorf("named an untracked file: %s", stderr.String())
			}
		})
	}
}

// lint.sh (make lint, and the first step of make test) runs staticcheck at the Makefile's pin:
// a module that gofmt and vet accept but staticcheck does not fails it.
func TestLintRunsStaticcheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds staticcheck")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	script, err := filepath.Abs("lint.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, src, want string
	}{
		{"clean", "package m\n\n// F is used.\nfunc F() int { return 1 }\n", ""},
		{"staticcheck finding", "package m\n\nfunc unused() {}\n", "U1000"},
		{"gofmt finding", "package m\nfunc F()  {}\n", "gofmt needed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/m\n\ngo 1.26\n"), 0o644)
			os.WriteFile(filepath.Join(dir, "m.go"), []byte(tt.src), 0o644)
			git(t, dir, "init", "-q")
			git(t, dir, "add", "-A")
			var out bytes.Buffer
			cmd := exec.Command("bash", script, dir)
			cmd.Stdout, cmd.Stderr = &out, &out
			cmd.Env = append(os.Environ(), "STATICCHECK_VERSION=") // the Makefile's pin
			err := cmd.Run()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v\n%s", err, out.String())
				}
				return
			}
			if err == nil || !strings.Contains(out.String(), tt.want) {
				t.Fatalf("err %v, output %q: want a failure naming %q", err, out.String(), tt.want)
			}
		})
	}
}

// make test (scripts/test.sh, which CI runs) runs both checks above before the tests.
func TestMakeTestRunsChecks(t *testing.T) {
	b, err := os.ReadFile("test.sh")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	tests := strings.Index(s, "go test ")
	for _, step := range []string{"bash scripts/check-large-files.sh", "bash scripts/lint.sh"} {
		i := strings.Index(s, "\n"+step+"\n")
		if i < 0 || tests < 0 || i > tests {
			t.Errorf("test.sh does not run %q before go test", step)
		}
	}
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mk), "STATICCHECK_VERSION=$(STATICCHECK_VERSION) bash scripts/test.sh") {
		t.Error("make test does not pass the pinned STATICCHECK_VERSION to test.sh")
	}
}
