package policies

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"gopkg.in/yaml.v3"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/schemes"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/release"
)

// This file holds the logic of `trustctl policy ...`: each command is one function that writes
// its report to w and returns a non-nil error when the command should exit non-zero. The cobra
// commands only parse flags and read key files:
//
//	policy lint FILE|DIR...                      Lint(out, args...)
//	policy test DIR                              Test(out, dir)
//	policy explain --claims FILE FILE|DIR        Explain(out, bundle, claims)
//	policy diff OLD NEW                          Diff(out, old, new)
//	policy sign --key PEM [--version N] DIR      Sign(out, dir, pemBytes, N, crypto/rand.Reader)
//	policy verify --keys PEM [--threshold M] DIR VerifyBundle(out, dir, pemBytes, M)
//
// When errors.Is(err, ErrFailed) the report is already on out: exit 1 without printing err.

// ErrFailed is returned (wrapped) by Lint, Test and Explain when they reported problems or a
// denial on w; the command should exit 1 without printing the error again.
var ErrFailed = errors.New("failed")

// Lint checks policy files and bundle directories: schema, unknown fields, types, names and CEL
// rules. It writes one "file:line:column: message" line per problem and "ok" lines for clean
// inputs.
func Lint(w io.Writer, paths ...string) error {
	if len(paths) == 0 {
		return errors.New("lint: no files given")
	}
	problems := 0
	for _, path := range paths {
		files, err := readSources(path)
		if err != nil {
			fmt.Fprintf(w, "%v\n", err)
			problems++
			continue
		}
		base := path
		if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
			base = filepath.Dir(path)
		}
		b, err := Parse(files)
		if err != nil {
			var es Errors
			var e *Error
			switch {
			case errors.As(err, &es):
			case errors.As(err, &e):
				es = Errors{e}
			default:
				es = Errors{{File: path, Msg: err.Error()}}
			}
			for _, e := range es {
				ec := *e
				if ec.File == "" {
					ec.File = path
				} else if ec.File != path {
					ec.File = filepath.Join(base, ec.File)
				}
				fmt.Fprintln(w, ec.Error())
			}
			problems += len(es)
			continue
		}
		names := make([]string, len(b.Policies))
		for i, p := range b.Policies {
			names[i] = p.Metadata.Name
		}
		fmt.Fprintf(w, "ok %s: %d policies (%s)\n", path, len(b.Policies), strings.Join(names, ", "))
	}
	if problems > 0 {
		return fmt.Errorf("lint: %d problems: %w", problems, ErrFailed)
	}
	return nil
}

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

// Test loads the policies of dir and runs every case of dir/tests/*.yaml, writing PASS or FAIL
// per case.
func Test(w io.Writer, dir string) error {
	b, err := Load(dir)
	if err != nil {
		return fmt.Errorf("test: %w", err)
	}
	tfs, _ := filepath.Glob(filepath.Join(dir, "tests", "*.yaml"))
	if len(tfs) == 0 {
		return fmt.Errorf("test: no test files %s", filepath.Join(dir, "tests", "*.yaml"))
	}
	sort.Strings(tfs)
	pass, fail := 0, 0
	for _, tf := range tfs {
		cases, err := readTestFile(tf)
		if err != nil {
			return fmt.Errorf("test: %w", err)
		}
		for _, tc := range cases {
			msg, err := runCase(b, filepath.Dir(tf), tc)
			if err != nil {
				return fmt.Errorf("test: %s: case %q: %w", tf, tc.Name, err)
			}
			if msg == "" {
				pass++
				fmt.Fprintf(w, "PASS %s\n", tc.Name)
			} else {
				fail++
				fmt.Fprintf(w, "FAIL %s: %s\n", tc.Name, msg)
			}
		}
	}
	if fail > 0 {
		fmt.Fprintf(w, "FAIL: %d of %d cases failed\n", fail, pass+fail)
		return fmt.Errorf("test: %d cases failed: %w", fail, ErrFailed)
	}
	fmt.Fprintf(w, "ok: %d cases passed\n", pass)
	return nil
}

func readTestFile(name string) ([]TestCase, error) {
	src, err := readBounded(name)
	if err != nil {
		return nil, err
	}
	return parseTestFile(name, src)
}

func parseTestFile(name string, src []byte) ([]TestCase, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, yamlError(name, err)
	}
	n := &root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if err := strictNode(n, reflectTypeOf[TestFile]()); err != nil {
		return nil, locate(name, n, err)
	}
	var tf TestFile
	if err := n.Decode(&tf); err != nil {
		return nil, locate(name, n, err)
	}
	if tf.APIVersion != APIVersion || tf.Kind != TestKind {
		return nil, &Error{File: name, Line: n.Line, Column: n.Column, Msg: fmt.Sprintf("apiVersion %q kind %q: want %q %q", tf.APIVersion, tf.Kind, APIVersion, TestKind)}
	}
	for i, tc := range tf.Cases {
		at := nodeAt(n, "cases", i)
		if tc.Name == "" || tc.Claims == "" {
			return nil, &Error{File: name, Line: at.Line, Column: at.Column, Msg: fmt.Sprintf("cases[%d]: name and claims are required", i)}
		}
		if tc.Expect.Verdict != "allow" && tc.Expect.Verdict != "deny" {
			return nil, &Error{File: name, Line: at.Line, Column: at.Column, Msg: fmt.Sprintf("cases[%d]: expect.verdict must be allow or deny", i)}
		}
		if tc.Expect.Verdict == "deny" && len(tc.Releases) > 0 {
			return nil, &Error{File: name, Line: at.Line, Column: at.Column, Msg: fmt.Sprintf("cases[%d]: releases need an allow verdict", i)}
		}
	}
	if len(tf.Cases) == 0 {
		return nil, &Error{File: name, Msg: "no cases"}
	}
	return tf.Cases, nil
}

// ReadClaims reads attest.Claims from JSON strictly.
func ReadClaims(name string) (*attest.Claims, error) {
	src, err := readBounded(name)
	if err != nil {
		return nil, err
	}
	return parseClaims(name, src)
}

func parseClaims(name string, src []byte) (*attest.Claims, error) {
	// What `trustctl evidence verify --format json` prints holds the claims under "claims".
	var printed struct {
		Verified *bool           `json:"verified"`
		Claims   json.RawMessage `json:"claims"`
	}
	if json.Unmarshal(src, &printed) == nil && printed.Verified != nil {
		if !*printed.Verified || len(printed.Claims) == 0 {
			return nil, &Error{File: name, Msg: "the evidence did not verify: no claims to appraise"}
		}
		src = printed.Claims
	}
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.DisallowUnknownFields()
	var c attest.Claims
	if err := dec.Decode(&c); err != nil {
		return nil, jsonError(name, src, err, dec.InputOffset())
	}
	if c.TEE != "" {
		t, err := schemes.ParseTEE(string(c.TEE))
		if err != nil {
			return nil, &Error{File: name, Msg: err.Error()}
		}
		c.TEE = t
	}
	return &c, nil
}

// runCase returns "" when the case passes, else what differed.
func runCase(b *Bundle, dir string, tc TestCase) (string, error) {
	c, err := ReadClaims(filepath.Join(dir, tc.Claims))
	if err != nil {
		return "", err
	}
	d, err := b.Evaluate(c)
	var den *Denial
	if err != nil && !errors.As(err, &den) {
		return "", err
	}
	e := tc.Expect
	if e.Verdict == "deny" {
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

// Explain evaluates the claims in claimsFile against the bundle at bundlePath (a directory or a
// file) and writes every check in order with pass or fail, then the verdict and grants.
func Explain(w io.Writer, bundlePath, claimsFile string) error {
	b, err := Load(bundlePath)
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	c, err := ReadClaims(claimsFile)
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	trace, d, err := b.Explain(c)
	var den *Denial
	if err != nil && !errors.As(err, &den) {
		return fmt.Errorf("explain: %w", err)
	}
	fmt.Fprintf(w, "bundle: version %d, digest %x, %d policies\n", b.Version, b.Digest, len(b.Policies))
	fmt.Fprintf(w, "claims: tee %s, measurement %s\n", c.TEE, c.Measurement)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	last := "\x00"
	for _, ch := range trace {
		if ch.Policy != last {
			last = ch.Policy
			if p := b.Policy(ch.Policy); p != nil {
				tw.Flush()
				fmt.Fprintf(w, "policy %s (%s:%d):\n", p.Metadata.Name, p.File, p.Line)
			} else {
				tw.Flush()
				fmt.Fprintln(w, "no policy lists this TEE type and measurement:")
			}
		}
		res := "fail"
		if ch.Pass {
			res = "pass"
		}
		fmt.Fprintf(tw, "  %s\t%s\tseen %s\texpected %s\n", res, ch.Claim, ch.Seen, ch.Expected)
	}
	tw.Flush()
	if d == nil {
		fmt.Fprintf(w, "verdict: deny: %s is %s, expected %s", den.Claim, den.Seen, den.Expected)
		if den.Policy != "" {
			fmt.Fprintf(w, " (policy %s)", den.Policy)
		}
		fmt.Fprintln(w)
		return fmt.Errorf("explain: %w", ErrFailed)
	}
	fmt.Fprintf(w, "verdict: allow by policy %s\n", d.Policy)
	for _, g := range grantLines(d.policy) {
		fmt.Fprintf(w, "  grant %s\n", g)
	}
	return nil
}

// grantLines describes the grants of a policy, constraints included, sorted.
func grantLines(p *Policy) []string {
	var out []string
	for _, l := range []struct {
		kind release.GrantKind
		gs   []Grant
	}{{release.GrantSecret, p.Spec.Grants.Secrets}, {release.GrantDataKey, p.Spec.Grants.DataKeys}} {
		for _, g := range l.gs {
			s := string(l.kind) + " " + g.Name
			var cs []string
			for _, k := range sortedKeys(g.Context) {
				cs = append(cs, fmt.Sprintf("%s in [%s]", k, strings.Join(g.Context[k], " ")))
			}
			if len(cs) > 0 {
				s += " (context " + strings.Join(cs, ", ") + ")"
			}
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// references maps what a workload is recognised by (TEE type and launch measurement, or an SGX
// signer) to the policy that accepts it.
func references(b *Bundle) map[string]*Policy {
	out := map[string]*Policy{}
	for _, p := range b.Policies {
		for _, t := range p.Spec.TEE {
			for _, m := range p.Spec.Measurements {
				k := fmt.Sprintf("%s measurement %s", t, m)
				if _, dup := out[k]; !dup {
					out[k] = p
				}
			}
		}
		if s := p.Spec.SGXSigner; s != nil {
			out[fmt.Sprintf("sgx mrsigner %s product %s svn >= %s", s.MRSigner, optU(s.ProductID, ""), optU(s.MinSVN, ""))] = p
		}
	}
	return out
}

// Diff compares two bundles (directories or files) and writes which images — TEE type and
// measurement — gain or lose which grants, then which policies changed their requirements.
func Diff(w io.Writer, oldPath, newPath string) error {
	ob, err := Load(oldPath)
	if err != nil {
		return fmt.Errorf("diff: old: %w", err)
	}
	nb, err := Load(newPath)
	if err != nil {
		return fmt.Errorf("diff: new: %w", err)
	}
	or, nr := references(ob), references(nb)
	keys := map[string]bool{}
	for k := range or {
		keys[k] = true
	}
	for k := range nr {
		keys[k] = true
	}
	changes := 0
	for _, k := range sortedKeys(keys) {
		op, np := or[k], nr[k]
		var og, ng []string
		if op != nil {
			og = grantLines(op)
		}
		if np != nil {
			ng = grantLines(np)
		}
		var lines []string
		for _, g := range ng {
			if !slices.Contains(og, g) {
				lines = append(lines, "  + "+g)
			}
		}
		for _, g := range og {
			if !slices.Contains(ng, g) {
				lines = append(lines, "  - "+g)
			}
		}
		head := ""
		switch {
		case op == nil:
			head = fmt.Sprintf("%s: newly accepted by policy %s", k, np.Metadata.Name)
		case np == nil:
			head = fmt.Sprintf("%s: no longer accepted (was policy %s)", k, op.Metadata.Name)
		case op.Metadata.Name != np.Metadata.Name:
			head = fmt.Sprintf("%s: policy %s, was %s", k, np.Metadata.Name, op.Metadata.Name)
		case len(lines) > 0:
			head = fmt.Sprintf("%s: policy %s", k, np.Metadata.Name)
		}
		if head == "" {
			continue
		}
		changes++
		fmt.Fprintln(w, head)
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
	for _, np := range nb.Policies {
		op := ob.Policy(np.Metadata.Name)
		if op == nil {
			continue
		}
		if a, b := requirements(op), requirements(np); a != b {
			changes++
			fmt.Fprintf(w, "policy %s: requirements or rules changed\n", np.Metadata.Name)
		}
	}
	if changes == 0 {
		fmt.Fprintln(w, "no image gains or loses a grant; no requirement changed")
	}
	return nil
}

// requirements renders what a policy demands apart from measurements and grants, for Diff.
func requirements(p *Policy) string {
	s := p.Spec
	s.Measurements, s.ReferenceValues, s.Grants = nil, nil, Grants{}
	b, _ := yaml.Marshal(s)
	return string(b)
}

// Sign adds the signature of the PEM private key keyPEM to the bundle in dir; see SignDir. The
// first signer gives the version (at least 1, higher than the version in production); later
// signers give 0.
func Sign(w io.Writer, dir string, keyPEM []byte, version uint64, rand io.Reader) error {
	key, err := ParseSigningKey(keyPEM)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	kid, file, err := SignDir(dir, key, version, rand)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	man, err := readBounded(filepath.Join(dir, manifestName))
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	m, err := parseManifest(man)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	fmt.Fprintf(w, "signed version %d of %s (digest %x) with key %s: %s\n", m.Version, dir, digest(man), kid, file)
	return nil
}

// VerifyBundle checks the signed bundle in dir against the trusted keys (PEM public keys) and
// threshold as trustd would, and writes its version, digest and signers.
func VerifyBundle(w io.Writer, dir string, trustKeysPEM []byte, threshold int) (*Bundle, error) {
	keys, err := ParseTrustKeys(trustKeysPEM)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	b, err := LoadSigned(dir, VerifyOptions{Keys: keys, Threshold: threshold})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	m, _ := VerifyOptions{Keys: keys, Threshold: threshold}.threshold()
	fmt.Fprintf(w, "ok %s: version %d, digest %x, %d policies, signed by %d of %d required keys:\n", dir, b.Version, b.Digest, len(b.Policies), len(b.Signers), m)
	for _, s := range b.Signers {
		fmt.Fprintf(w, "  %s\n", s)
	}
	return b, nil
}

// Summary lists policy names and their grants, one per line, for people.
func (b *Bundle) Summary() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "bundle %x (version %d): %d policies\n", b.Digest, b.Version, len(b.Policies))
	for _, p := range b.Policies {
		fmt.Fprintf(&sb, "  %s: tee %v, %d measurements, %d rules, grants [%s]\n", p.Metadata.Name, p.Spec.TEE,
			len(p.Spec.Measurements), len(p.rules), strings.Join(grantLines(p), "; "))
	}
	return sb.String()
}
