package policies

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/schemes"
	"github.com/medicus-cloud/trust/attest/sgx"
	"github.com/medicus-cloud/trust/attest/snp"
	"github.com/medicus-cloud/trust/attest/tdx"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/release"
)

// Denial explains a denial: which claim failed, the value seen and the value expected. The
// service maps it to PermissionDenied.
type Denial struct {
	Policy   string
	Claim    string
	Seen     string
	Expected string
}

func (d *Denial) Error() string {
	s := fmt.Sprintf("denied: %s is %s, expected %s", d.Claim, d.Seen, d.Expected)
	if d.Policy != "" {
		s += fmt.Sprintf(" (policy %q)", d.Policy)
	}
	return s
}

// Decision is the result of an allowed evaluation.
type Decision struct {
	Policy string
	Digest []byte
	Grants []release.Grant
	// Version of the bundle that decided.
	Version uint64

	policy *Policy
}

// Check is one step of an evaluation, for explanations.
type Check struct {
	Policy   string
	Claim    string
	Pass     bool
	Seen     string
	Expected string
}

// ErrNoClaims is returned for nil claims.
var ErrNoClaims = errors.New("policies: no claims")

// Evaluate appraises claims against the bundle. Candidate policies are those that list the
// claims' TEE type and launch measurement (for SGX also those pinning the enclave's signer), in
// bundle order; the first candidate whose every check passes decides. If none does, the denial of
// the first candidate is returned. A denial is a *Denial.
func (b *Bundle) Evaluate(c *attest.Claims) (*Decision, error) {
	if c == nil {
		return nil, ErrNoClaims
	}
	cands := b.candidates(c)
	if len(cands) == 0 {
		return nil, b.noMatch(c)
	}
	var first *Denial
	var vars map[string]any
	for _, p := range cands {
		d := p.eval(c, &vars, nil)
		if d == nil {
			return &Decision{Policy: p.Metadata.Name, Digest: b.Digest, Version: b.Version, Grants: p.grants(), policy: p}, nil
		}
		if first == nil {
			first = d
		}
	}
	return nil, first
}

func (b *Bundle) candidates(c *attest.Claims) []*Policy {
	cands := b.byMeas[measKey{c.TEE, string(c.Measurement)}]
	if c.TEE == attest.SGX {
		if s, ok := c.Measurements[sgx.ClaimMRSIGNER]; ok {
			if more := b.bySigner[string(s)]; len(more) > 0 {
				cands = append(slices.Clip(cands), more...)
			}
		}
	}
	return cands
}

func (b *Bundle) noMatch(c *attest.Claims) *Denial {
	return &Denial{Claim: "measurement", Seen: c.Measurement.String(),
		Expected: fmt.Sprintf("a measurement approved for %s by one of %d policies", c.TEE, len(b.Policies))}
}

// Explain evaluates claims like Evaluate and returns every check of every candidate policy in
// order, with the decision or the denial.
func (b *Bundle) Explain(c *attest.Claims) ([]Check, *Decision, error) {
	if c == nil {
		return nil, nil, ErrNoClaims
	}
	cands := b.candidates(c)
	if len(cands) == 0 {
		d := b.noMatch(c)
		return []Check{{Claim: d.Claim, Seen: d.Seen, Expected: d.Expected}}, nil, d
	}
	var trace []Check
	var first *Denial
	var vars map[string]any
	for _, p := range cands {
		d := p.eval(c, &vars, &trace)
		if d == nil {
			return trace, &Decision{Policy: p.Metadata.Name, Digest: b.Digest, Version: b.Version, Grants: p.grants(), policy: p}, nil
		}
		if first == nil {
			first = d
		}
	}
	return trace, nil, first
}

// run records the checks of one policy. Without a trace it stops at the first failure and formats
// nothing for passing checks, which keeps Evaluate cheap.
type run struct {
	policy string
	trace  *[]Check
	denial *Denial
}

// check records one check; seen and want are only called when the result is reported.
func (r *run) check(ok bool, claim string, seen, want func() string) bool {
	if ok && r.trace == nil {
		return true
	}
	if !ok && r.denial == nil {
		r.denial = &Denial{Policy: r.policy, Claim: claim, Seen: seen(), Expected: want()}
		if r.trace == nil {
			return false
		}
	}
	*r.trace = append(*r.trace, Check{Policy: r.policy, Claim: claim, Pass: ok, Seen: seen(), Expected: want()})
	return ok || r.trace != nil
}

func str(s string) func() string { return func() string { return s } }

func (p *Policy) eval(c *attest.Claims, vars *map[string]any, trace *[]Check) *Denial {
	r := &run{policy: p.Metadata.Name, trace: trace}
	if !p.checks(c, r, vars) && r.denial == nil {
		r.denial = &Denial{Policy: p.Metadata.Name, Claim: "policy", Seen: "not evaluated", Expected: "every check to pass"}
	}
	return r.denial
}

// checks runs every check in the order explanations show them. It returns false as soon as a
// check fails when not tracing.
func (p *Policy) checks(c *attest.Claims, r *run, vars *map[string]any) bool {
	s := &p.Spec
	rq := &s.Require
	if !r.check(slices.Contains(s.TEE, c.TEE), "tee", str(string(c.TEE)), func() string { return fmt.Sprintf("one of %v", s.TEE) }) {
		return false
	}
	byMeas := slices.ContainsFunc(s.Measurements, func(m attest.Hex) bool { return bytes.Equal(m, c.Measurement) })
	if byMeas || s.SGXSigner == nil {
		if !r.check(byMeas, "measurement", c.Measurement.String, func() string { return fmt.Sprintf("one of %d approved measurements", len(s.Measurements)) }) {
			return false
		}
	} else {
		sg := s.SGXSigner
		signer := c.Measurements[sgx.ClaimMRSIGNER]
		if !r.check(bytes.Equal(signer, sg.MRSigner), "measurements."+sgx.ClaimMRSIGNER, signer.String, sg.MRSigner.String) {
			return false
		}
		// The parser requires both; a Policy built in Go without them matches nothing.
		pid, ok := c.Attributes[sgx.ClaimISVProdID]
		if !r.check(ok && sg.ProductID != nil && pid == *sg.ProductID, "attributes."+sgx.ClaimISVProdID, seenU(pid, ok), func() string { return optU(sg.ProductID, "") }) {
			return false
		}
		svn, ok := c.TCB[sgx.ClaimISVSVN]
		if !r.check(ok && sg.MinSVN != nil && svn >= *sg.MinSVN, "tcb."+sgx.ClaimISVSVN, seenU(svn, ok), func() string { return optU(sg.MinSVN, ">= ") }) {
			return false
		}
	}
	if !r.check(!c.Debug || rq.AllowDebug, "debug", boolS(c.Debug), func() string { return allowed(rq.AllowDebug) }) {
		return false
	}
	if !r.check(!c.Migration || rq.AllowMigration, "migration", boolS(c.Migration), func() string { return allowed(rq.AllowMigration) }) {
		return false
	}
	if want := rq.PlatformSMTEnabled; want != nil {
		v, known := c.PlatformSMTEnabled.Known()
		if !r.check(known && v == *want, "platform_smt_enabled", c.PlatformSMTEnabled.String, boolS(*want)) {
			return false
		}
	}
	if want := rq.PolicySMTAllowed; want != nil {
		v := c.PolicySMTAllowed
		if !r.check(v != nil && *v == *want, "policy_smt_allowed", func() string {
			if v == nil {
				return "absent"
			}
			return fmt.Sprint(*v)
		}, boolS(*want)) {
			return false
		}
	}
	hw := schemes.Hardware(c.TEE)
	if rq.VMPL != nil || hw == attest.SEVSNP {
		want := uint64(0)
		if rq.VMPL != nil {
			want = *rq.VMPL
		}
		v, ok := c.Attributes[snp.ClaimVMPL]
		if !r.check(ok && v == want, "attributes."+snp.ClaimVMPL, seenU(v, ok), func() string {
			if rq.VMPL == nil {
				return "0 (the default; other levels only where spec.require.vmpl names them)"
			}
			return fmt.Sprint(want)
		}) {
			return false
		}
	}
	if hw == attest.TDX {
		td, ok := c.Attributes[tdx.ClaimTDAttributes]
		if !rq.AllowSeptVE && !r.check(ok && td&tdSeptVEDisable != 0, "attributes."+tdx.ClaimTDAttributes+".sept_ve_disable", bitS(td, ok, tdSeptVEDisable), str("true (set spec.require.allowSeptVE to accept TDs without it)")) {
			return false
		}
		if !rq.AllowTUDDebugBits && !r.check(ok && td&tdTUDDebugBits == 0, "attributes."+tdx.ClaimTDAttributes+".tud", func() string {
			if !ok {
				return "absent"
			}
			return fmt.Sprintf("%#02x", td&0xff)
		}, str("bits 1-7 clear (set spec.require.allowTUDDebugBits to accept them)")) {
			return false
		}
	}
	for _, k := range sortedKeys(rq.MinTCB) {
		v, ok := c.TCB[k]
		min := rq.MinTCB[k]
		if !r.check(ok && v >= min, "tcb."+k, seenU(v, ok), func() string { return fmt.Sprintf(">= %d", min) }) {
			return false
		}
	}
	if rq.MinTeeTCBSVN != nil {
		v, ok := c.Config[tdx.ClaimTEETCBSVN]
		if !r.check(ok && svnAtLeast(v, rq.MinTeeTCBSVN), "config."+tdx.ClaimTEETCBSVN, seenH(v, ok), func() string {
			return ">= " + rq.MinTeeTCBSVN.String() + " in every byte"
		}) {
			return false
		}
	}
	if hw == attest.TDX || hw == attest.SGX || c.TCBStatus != "" {
		accepted := rq.TCBStatus
		if len(accepted) == 0 {
			accepted = []string{"UpToDate"}
		}
		st := c.TCBStatus
		if !r.check(slices.Contains(accepted, st), "tcb_status", func() string { return orAbsent(st) }, func() string { return fmt.Sprintf("one of %v", accepted) }) {
			return false
		}
		var bad []string
		for _, a := range c.Advisories {
			if !slices.Contains(rq.Advisories, a) {
				bad = append(bad, a)
			}
		}
		if !r.check(len(bad) == 0, "advisories", func() string { return fmt.Sprintf("%v", c.Advisories) }, func() string {
			if len(rq.Advisories) == 0 {
				return "none outstanding"
			}
			return fmt.Sprintf("only %v outstanding", rq.Advisories)
		}) {
			return false
		}
	}
	for _, k := range sortedKeys(rq.Config) {
		v, ok := c.Config[k]
		if !r.check(ok && bytes.Equal(v, rq.Config[k]), "config."+k, seenH(v, ok), rq.Config[k].String) {
			return false
		}
	}
	for _, k := range sortedKeys(rq.Measurements) {
		v, ok := c.Measurements[k]
		if !r.check(ok && bytes.Equal(v, rq.Measurements[k]), "measurements."+k, seenH(v, ok), rq.Measurements[k].String) {
			return false
		}
	}
	for _, i := range slices.Sorted(maps.Keys(rq.PCRs)) {
		v, ok := c.Measurements[attest.PCRClaim(i)]
		if !r.check(ok && bytes.Equal(v, rq.PCRs[i]), fmt.Sprintf("pcrs.%d", i), seenH(v, ok), rq.PCRs[i].String) {
			return false
		}
	}
	if !p.checkMeasured(c, r) { // components.go
		return false
	}
	for _, ru := range p.rules {
		if *vars == nil {
			*vars = celVars(c)
		}
		ok, err := ru.eval(*vars)
		if !r.check(ok, "rule "+ru.Name, func() string {
			if err != nil {
				return "error: " + err.Error()
			}
			return boolS(ok)()
		}, func() string {
			if ru.Message != "" {
				return "true: " + ru.Message
			}
			return "true: " + strings.Join(strings.Fields(ru.Expr), " ")
		}) {
			return false
		}
	}
	return true
}

// TDX TD attribute bits the defaults check.
const (
	tdSeptVEDisable = 1 << 28
	tdTUDDebugBits  = 0xfe // TUD bits 1-7; bit 0 is DEBUG
)

func bitS(v uint64, ok bool, bit uint64) func() string {
	return func() string {
		if !ok {
			return "absent"
		}
		return fmt.Sprint(v&bit != 0)
	}
}

func optU(v *uint64, prefix string) string {
	if v == nil {
		return "a value the policy does not set"
	}
	return fmt.Sprintf("%s%d", prefix, *v)
}

func svnAtLeast(seen, min attest.Hex) bool {
	if len(seen) != len(min) {
		return false
	}
	for i := range min {
		if seen[i] < min[i] {
			return false
		}
	}
	return true
}

func boolS(b bool) func() string { return func() string { return fmt.Sprint(b) } }

func allowed(a bool) string {
	if a {
		return "false or true (allowed)"
	}
	return "false"
}

func seenU(v uint64, ok bool) func() string {
	return func() string {
		if !ok {
			return "absent"
		}
		return fmt.Sprint(v)
	}
}

func seenH(v attest.Hex, ok bool) func() string {
	return func() string {
		if !ok {
			return "absent"
		}
		return v.String()
	}
}

func orAbsent(s string) string {
	if s == "" {
		return "absent"
	}
	return s
}

func (p *Policy) grants() []release.Grant {
	var g []release.Grant
	for _, n := range p.Spec.Grants.Secrets {
		g = append(g, release.Grant{Kind: release.GrantSecret, Name: n.Name})
	}
	for _, n := range p.Spec.Grants.DataKeys {
		g = append(g, release.Grant{Kind: release.GrantDataKey, Name: n.Name})
	}
	return g
}

func (p *Policy) grant(kind release.GrantKind, name string) *Grant {
	list := p.Spec.Grants.Secrets
	if kind == release.GrantDataKey {
		list = p.Spec.Grants.DataKeys
	} else if kind != release.GrantSecret {
		return nil
	}
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

// CheckContext decides a release: whether the decision grants name of kind (release.GrantSecret or
// release.GrantDataKey) and whether the release's key context kc meets the grant's constraints. For
// every key a grant constrains, kc must hold that key with one of the listed values; keys the
// grant does not mention are free. Secrets carry no constraints (the parser refuses them), so
// CheckContext(release.GrantSecret, name, nil) only checks the grant. A refusal is a *Denial naming
// "grants" or "context.<key>".
func (d *Decision) CheckContext(kind release.GrantKind, name string, kc kms.Context) error {
	if d == nil || d.policy == nil {
		return &Denial{Claim: "grants", Seen: name, Expected: "a decision from a loaded bundle"}
	}
	return d.policy.checkContext(kind, name, kc)
}

// CheckContext is Decision.CheckContext for the release calls, which hold a result token rather
// than a Decision: policy is the token's policy name. Call it on the current bundle: if the
// policy or the grant is gone after a reload, the release is denied (the bundle that vouched for
// the workload has been superseded), and constraints are the current ones.
func (b *Bundle) CheckContext(policy string, kind release.GrantKind, name string, kc kms.Context) error {
	p := b.Policy(policy)
	if p == nil {
		return &Denial{Policy: policy, Claim: "policy", Seen: policy, Expected: fmt.Sprintf("a policy of the active bundle (version %d)", b.Version)}
	}
	return p.checkContext(kind, name, kc)
}

func (p *Policy) checkContext(kind release.GrantKind, name string, kc kms.Context) error {
	g := p.grant(kind, name)
	if g == nil {
		return &Denial{Policy: p.Metadata.Name, Claim: "grants", Seen: name, Expected: fmt.Sprintf("a %s granted to this workload", kind)}
	}
	for _, k := range sortedKeys(g.Context) {
		v, ok := kc[k]
		if !ok || !slices.Contains(g.Context[k], v) {
			seen := "absent"
			if ok {
				seen = fmt.Sprintf("%q", v)
			}
			return &Denial{Policy: p.Metadata.Name, Claim: "context." + k, Seen: seen, Expected: fmt.Sprintf("one of %q for %s %s", []string(g.Context[k]), kind, name)}
		}
	}
	return nil
}

// Revalidate checks, at release time, that the current bundle still accepts the image a result
// token was issued for: policy is the token's policy name, tee and measurement its claims. After
// a reload that drops an image, releases to its outstanding tokens stop at once rather than when
// the tokens expire. Policies that accept SGX enclaves by signer cannot be rechecked from a
// token, which does not carry MRSIGNER; for them the policy's existence is checked.
func (b *Bundle) Revalidate(policy string, tee attest.TEE, measurement []byte) error {
	p := b.Policy(policy)
	if p == nil {
		return &Denial{Policy: policy, Claim: "policy", Seen: policy, Expected: fmt.Sprintf("a policy of the active bundle (version %d)", b.Version)}
	}
	if !slices.Contains(p.Spec.TEE, tee) {
		return &Denial{Policy: policy, Claim: "tee", Seen: string(tee), Expected: fmt.Sprintf("one of %v", p.Spec.TEE)}
	}
	if p.Spec.SGXSigner != nil && tee == attest.SGX {
		return nil
	}
	if !slices.ContainsFunc(p.Spec.Measurements, func(m attest.Hex) bool { return bytes.Equal(m, measurement) }) {
		return &Denial{Policy: policy, Claim: "measurement", Seen: attest.Hex(measurement).String(), Expected: "a measurement the active bundle still approves"}
	}
	return nil
}
