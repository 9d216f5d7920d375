package main

import (
	"bytes"
	"cmp"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The policy reports run in policies/, where the example bundle and the lint and diff inputs
// live, so that the paths they print are those a policy author types there; their golden files
// are in testdata/policy here.
var goldenDir, _ = filepath.Abs(filepath.Join("testdata", "policy"))

func inPolicies(t *testing.T) { t.Chdir(filepath.Join("..", "..", "policies")) }

// golden compares got with testdata/policy/NAME.golden, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(goldenDir, name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestLintGolden(t *testing.T) {
	inPolicies(t)
	files, _ := filepath.Glob("testdata/lint/*.yaml")
	var out bytes.Buffer
	err := policyLint(&out, append(files, "examples", "examples/teleconsult.yaml", "testdata/missing.yaml")...)
	if !errors.Is(err, errFailed) {
		t.Fatalf("lint returned %v", err)
	}
	golden(t, "lint", out.Bytes())
	out.Reset()
	if err := policyLint(&out, "examples"); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
}

func TestExplainGolden(t *testing.T) {
	inPolicies(t)
	tests := []struct {
		name, claims string
		deny         bool
		bundle       string
	}{
		{"explain-allow", "examples/tests/teleconsult.json", false, ""},
		{"explain-deny", "examples/tests/messenger-out-of-date.json", true, ""},
		{"explain-no-match", "examples/tests/teleconsult-unknown-image.json", true, ""},
		// The real Azure SEV-SNP capture's claims: the paravisor's measurement passes, PCR 7 fails.
		{"explain-azure-pcr", "testdata/azure-snp-claims.json", true, "testdata/azure"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := policyExplain(&out, cmp.Or(tc.bundle, "examples"), tc.claims)
			if tc.deny != errors.Is(err, errFailed) || !tc.deny && err != nil {
				t.Fatalf("explain returned %v", err)
			}
			golden(t, tc.name, out.Bytes())
		})
	}
	var out bytes.Buffer
	if err := policyExplain(&out, "examples", "testdata/missing.json"); err == nil || errors.Is(err, errFailed) {
		t.Fatalf("missing claims: %v", err)
	}
}

func TestDiffGolden(t *testing.T) {
	inPolicies(t)
	var out bytes.Buffer
	if err := policyDiff(&out, "testdata/diff/old", "testdata/diff/new"); err != nil {
		t.Fatal(err)
	}
	golden(t, "diff", out.Bytes())
	out.Reset()
	if err := policyDiff(&out, "examples", "examples"); err != nil || !strings.HasPrefix(out.String(), "no image gains") {
		t.Fatalf("%v %q", err, out.String())
	}
}

func TestPolicyTestFailures(t *testing.T) {
	inPolicies(t)
	dir := t.TempDir()
	copyFile(t, "examples/hello.yaml", filepath.Join(dir, "hello.yaml"))
	if err := os.Mkdir(filepath.Join(dir, "tests"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, "examples/tests/hello.json", filepath.Join(dir, "tests", "hello.json"))
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, "tests", "t.yaml"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	head := "apiVersion: trust.medicus.cloud/v1\nkind: PolicyTest\ncases:\n"
	write(head + `  - {name: wrong verdict, claims: hello.json, expect: {verdict: deny}}
  - {name: wrong grants, claims: hello.json, expect: {verdict: allow, grants: [secret:x]}}
  - {name: wrong release, claims: hello.json, expect: {verdict: allow}, releases: [{kind: secret, name: hello/api-token, allow: false}]}
  - {name: right, claims: hello.json, expect: {verdict: allow, policy: hello}}
`)
	var out bytes.Buffer
	if err := policyTest(&out, dir); !errors.Is(err, errFailed) {
		t.Fatalf("got %v", err)
	}
	golden(t, "test-failures", out.Bytes())
	for _, tc := range []struct{ src, want string }{
		{head + "  - {name: x, claims: hello.json, expect: {verdict: maybe}}\n", "t.yaml:4:5: cases[0]: expect.verdict must be allow or deny"},
		{head + "  - {name: x, claims: hello.json, expect: {verdict: allow}, colour: red}\n", `t.yaml:4:61: unknown field "colour"`},
		{head + "  - {name: x, claims: missing.json, expect: {verdict: allow}}\n", "missing.json"},
		{"apiVersion: trust.medicus.cloud/v1\nkind: ImagePolicy\ncases: []\n", "PolicyTest"},
	} {
		write(tc.src)
		out.Reset()
		if err := policyTest(&out, dir); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "tests", "hello.json"), []byte(`{"tee": "tdx", "colour": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	write(head + "  - {name: x, claims: hello.json, expect: {verdict: allow}}\n")
	if err := policyTest(&out, dir); err == nil || !strings.Contains(err.Error(), `hello.json:1:`) {
		t.Errorf("unknown claims field: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
