package main

import (
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

	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/policies/policytest"
	"github.com/medicus-cloud/trust/release"
	"maps"
)

// The reports of `trustctl policy ...`: each command is one function that writes its report to
// w and returns a non-nil error when the command should exit non-zero; the cobra commands in
// policy.go only parse flags and read key files. When errors.Is(err, errFailed) the report is
// already on w: exit 1 without printing err.

// errFailed is returned (wrapped) by the reports that printed problems or a denial.
var errFailed = errors.New("failed")

// policyLint checks policy files and bundle directories: schema, unknown fields, types, names and CEL
// rules. It writes one "file:line:column: message" line per problem and "ok" lines for clean
// inputs.
func policyLint(w io.Writer, paths ...string) error {
	if len(paths) == 0 {
		return errors.New("lint: no files given")
	}
	problems := 0
	for _, path := range paths {
		files, err := policies.ReadSources(path)
		if err != nil {
			fmt.Fprintf(w, "%v\n", err)
			problems++
			continue
		}
		base := path
		if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
			base = filepath.Dir(path)
		}
		b, err := policies.Parse(files)
		if err != nil {
			var es policies.Errors
			var e *policies.Error
			switch {
			case errors.As(err, &es):
			case errors.As(err, &e):
				es = policies.Errors{e}
			default:
				es = policies.Errors{{File: path, Msg: err.Error()}}
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
		return fmt.Errorf("lint: %d problems: %w", problems, errFailed)
	}
	return nil
}

// policyExplain evaluates the claims in claimsFile against the bundle at bundlePath (a directory or a
// file) and writes every check in order with pass or fail, then the verdict and grants.
func policyExplain(w io.Writer, bundlePath, claimsFile string) error {
	b, err := policies.Load(bundlePath)
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	c, err := policies.ReadClaims(claimsFile)
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	trace, d, err := b.Explain(c)
	var den *policies.Denial
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
		return fmt.Errorf("explain: %w", errFailed)
	}
	fmt.Fprintf(w, "verdict: allow by policy %s\n", d.Policy)
	for _, g := range grantLines(b.Policy(d.Policy)) {
		fmt.Fprintf(w, "  grant %s\n", g)
	}
	return nil
}

// grantLines describes the grants of a policy, constraints included, sorted.
func grantLines(p *policies.Policy) []string {
	var out []string
	for _, l := range []struct {
		kind release.GrantKind
		gs   []policies.Grant
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
func references(b *policies.Bundle) map[string]*policies.Policy {
	out := map[string]*policies.Policy{}
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

// policyDiff compares two bundles (directories or files) and writes which images — TEE type and
// measurement — gain or lose which grants, then which policies changed their requirements.
func policyDiff(w io.Writer, oldPath, newPath string) error {
	ob, err := policies.Load(oldPath)
	if err != nil {
		return fmt.Errorf("diff: old: %w", err)
	}
	nb, err := policies.Load(newPath)
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
func requirements(p *policies.Policy) string {
	s := p.Spec
	s.Measurements, s.ReferenceValues, s.Grants = nil, nil, policies.Grants{}
	b, _ := yaml.Marshal(s)
	return string(b)
}

// policySign adds the signature of the PEM private key keyPEM to the bundle in dir; see SignDir. The
// first signer gives the version (at least 1, higher than the version in production); later
// signers give 0.
func policySign(w io.Writer, dir string, keyPEM []byte, version uint64, rand io.Reader) error {
	key, err := policies.ParseSigningKey(keyPEM)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	kid, file, err := policies.SignDir(dir, key, version, rand)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	version, digest, err := policies.Manifest(dir)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	fmt.Fprintf(w, "signed version %d of %s (digest %x) with key %s: %s\n", version, dir, digest, kid, file)
	return nil
}

// policyVerify checks the signed bundle in dir against the trusted keys (PEM public keys) and
// threshold as trustd would, and writes its version, digest and signers.
func policyVerify(w io.Writer, dir string, trustKeysPEM []byte, threshold int) (*policies.Bundle, error) {
	keys, err := policies.ParseTrustKeys(trustKeysPEM)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	b, err := policies.LoadSigned(dir, policies.VerifyOptions{Keys: keys, Threshold: threshold})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	m, _ := policies.VerifyOptions{Keys: keys, Threshold: threshold}.Required()
	fmt.Fprintf(w, "ok %s: version %d, digest %x, %d policies, signed by %d of %d required keys:\n", dir, b.Version, b.Digest, len(b.Policies), len(b.Signers), m)
	for _, s := range b.Signers {
		fmt.Fprintf(w, "  %s\n", s)
	}
	return b, nil
}

// policySummary lists policy names and their grants, one per line, for people.
func policySummary(b *policies.Bundle) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "bundle %x (version %d): %d policies\n", b.Digest, b.Version, len(b.Policies))
	for _, p := range b.Policies {
		fmt.Fprintf(&sb, "  %s: tee %v, %d measurements, %d rules, grants [%s]\n", p.Metadata.Name, p.Spec.TEE,
			len(p.Spec.Measurements), p.RuleCount(), strings.Join(grantLines(p), "; "))
	}
	return sb.String()
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// optU renders an optional number of a policy.
func optU(v *uint64, prefix string) string {
	if v == nil {
		return "a value the policy does not set"
	}
	return fmt.Sprintf("%s%d", prefix, *v)
}

// policyTest runs the test cases of the bundle in dir, writing PASS or FAIL per case.
func policyTest(w io.Writer, dir string) error {
	res, err := policytest.Run(dir)
	if err != nil {
		return err
	}
	fail := 0
	for _, r := range res {
		if r.Failure == "" {
			fmt.Fprintf(w, "PASS %s\n", r.Name)
		} else {
			fail++
			fmt.Fprintf(w, "FAIL %s: %s\n", r.Name, r.Failure)
		}
	}
	if fail > 0 {
		fmt.Fprintf(w, "FAIL: %d of %d cases failed\n", fail, len(res))
		return fmt.Errorf("test: %d cases failed: %w", fail, errFailed)
	}
	fmt.Fprintf(w, "ok: %d cases passed\n", len(res))
	return nil
}
