// Package policytest runs the test cases of a policy bundle: DIR/tests/*.yaml files of kind
// PolicyTest, each case a claims file with the verdict, policy, grants and releases it expects.
// It returns results; `trustctl policy test` prints them.
package policytest

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/release"
)

// TestKind is the kind of a policy test file.
const TestKind = "PolicyTest"

// TestFile is a policy test file: DIR/tests/*.yaml next to the policies of DIR.
type TestFile struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Cases      []TestCase `yaml:"cases"`
}

// TestCase runs one claims file (attest.Claims as JSON, relative to the test file) through the
// bundle and compares the verdict.
type TestCase struct {
	Name   string `yaml:"name"`
	Claims string `yaml:"claims"`
	Expect Expect `yaml:"expect"`
	// Releases are checked against the decision with Decision.CheckContext.
	Releases []TestRelease `yaml:"releases,omitempty"`
}

// Expect is the expected verdict. For allow, Policy and Grants (as "kind:name") are compared
// when given; for deny, Policy and Claim (the claim a Denial names).
type Expect struct {
	Verdict string   `yaml:"verdict"`
	Policy  string   `yaml:"policy,omitempty"`
	Claim   string   `yaml:"claim,omitempty"`
	Grants  []string `yaml:"grants,omitempty"`
}

// TestRelease is one release to try on an allowed decision.
type TestRelease struct {
	Kind    string            `yaml:"kind"`
	Name    string            `yaml:"name"`
	Context map[string]string `yaml:"context,omitempty"`
	Allow   bool              `yaml:"allow"`
}

// Result is the outcome of one case: Failure is empty when it passed, else what differed.
type Result struct {
	Name    string
	Failure string
}

// Run loads the policies of dir and runs every case of dir/tests/*.yaml, in file order. An error
// means the tests could not run (no test file, a malformed case, unreadable claims); failed
// cases are Results with a Failure.
func Run(dir string) ([]Result, error) {
	b, err := policies.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("test: %w", err)
	}
	tfs, _ := filepath.Glob(filepath.Join(dir, "tests", "*.yaml"))
	if len(tfs) == 0 {
		return nil, fmt.Errorf("test: no test files %s", filepath.Join(dir, "tests", "*.yaml"))
	}
	sort.Strings(tfs)
	var out []Result
	for _, tf := range tfs {
		cases, err := readTestFile(tf)
		if err != nil {
			return nil, fmt.Errorf("test: %w", err)
		}
		for _, tc := range cases {
			msg, err := runCase(b, filepath.Dir(tf), tc)
			if err != nil {
				return nil, fmt.Errorf("test: %s: case %q: %w", tf, tc.Name, err)
			}
			out = append(out, Result{Name: tc.Name, Failure: msg})
		}
	}
	return out, nil
}

func readTestFile(name string) ([]TestCase, error) {
	src, err := policies.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return parseTestFile(name, src)
}

func parseTestFile(name string, src []byte) ([]TestCase, error) {
	var tf TestFile
	n, err := policies.DecodeStrict(name, src, &tf)
	if err != nil {
		return nil, err
	}
	if tf.APIVersion != policies.APIVersion || tf.Kind != TestKind {
		return nil, &policies.Error{File: name, Line: n.Line, Column: n.Column, Msg: fmt.Sprintf("apiVersion %q kind %q: want %q %q", tf.APIVersion, tf.Kind, policies.APIVersion, TestKind)}
	}
	for i, tc := range tf.Cases {
		at := policies.NodeAt(n, "cases", i)
		if tc.Name == "" || tc.Claims == "" {
			return nil, &policies.Error{File: name, Line: at.Line, Column: at.Column, Msg: fmt.Sprintf("cases[%d]: name and claims are required", i)}
		}
		if tc.Expect.Verdict != string(release.Allow) && tc.Expect.Verdict != string(release.Deny) {
			return nil, &policies.Error{File: name, Line: at.Line, Column: at.Column, Msg: fmt.Sprintf("cases[%d]: expect.verdict must be allow or deny", i)}
		}
		if tc.Expect.Verdict == string(release.Deny) && len(tc.Releases) > 0 {
			return nil, &policies.Error{File: name, Line: at.Line, Column: at.Column, Msg: fmt.Sprintf("cases[%d]: releases need an allow verdict", i)}
		}
	}
	if len(tf.Cases) == 0 {
		return nil, &policies.Error{File: name, Msg: "no cases"}
	}
	return tf.Cases, nil
}

// runCase returns "" when the case passes, else what differed.
func runCase(b *policies.Bundle, dir string, tc TestCase) (string, error) {
	c, err := policies.ReadClaims(filepath.Join(dir, tc.Claims))
	if err != nil {
		return "", err
	}
	d, err := b.Evaluate(c)
	var den *policies.Denial
	if err != nil && !errors.As(err, &den) {
		return "", err
	}
	e := tc.Expect
	if e.Verdict == string(release.Deny) {
		switch {
		case d != nil:
			return fmt.Sprintf("allowed by policy %q, want deny", d.Policy), nil
		case e.Claim != "" && den.Claim != e.Claim:
			return fmt.Sprintf("denied on %s (%v), want denied on %s", den.Claim, den, e.Claim), nil
		case e.Policy != "" && den.Policy != e.Policy:
			return fmt.Sprintf("denied by policy %q, want %q", den.Policy, e.Policy), nil
		}
		return "", nil
	}
	if d == nil {
		return fmt.Sprintf("%v, want allow", den), nil
	}
	if e.Policy != "" && d.Policy != e.Policy {
		return fmt.Sprintf("allowed by policy %q, want %q", d.Policy, e.Policy), nil
	}
	if e.Grants != nil {
		var got []string
		for _, g := range d.Grants {
			got = append(got, string(g.Kind)+":"+g.Name)
		}
		want := slices.Clone(e.Grants)
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			return fmt.Sprintf("grants %v, want %v", got, want), nil
		}
	}
	for _, r := range tc.Releases {
		err := d.CheckContext(release.GrantKind(r.Kind), r.Name, kms.Context(r.Context))
		if (err == nil) != r.Allow {
			if err == nil {
				return fmt.Sprintf("release of %s %s with context %v allowed, want denied", r.Kind, r.Name, r.Context), nil
			}
			return fmt.Sprintf("release of %s %s with context %v: %v, want allowed", r.Kind, r.Name, r.Context, err), nil
		}
	}
	return "", nil
}
