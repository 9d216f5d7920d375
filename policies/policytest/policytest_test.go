package policytest

import (
	"os"
	"path/filepath"
	"testing"
)

// The example bundle's own test cases pass.
func TestExamples(t *testing.T) {
	res, err := Run("../examples")
	if err != nil {
		t.Fatal(err)
	}
	if len(res) == 0 {
		t.Fatal("no cases ran")
	}
	for _, r := range res {
		if r.Failure != "" {
			t.Errorf("%s: %s", r.Name, r.Failure)
		}
	}
}

func FuzzTestFile(f *testing.F) {
	m, _ := filepath.Glob("../examples/tests/*.yaml")
	for _, n := range m {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cases, err := parseTestFile("t.yaml", b)
		if err == nil && len(cases) == 0 {
			t.Fatal("accepted a test file without cases")
		}
	})
}
