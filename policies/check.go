package policies

import (
	"bytes"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/schemes"
	"github.com/medicus-cloud/trust/kms"
)

// Known claim names, so that a typo in a policy is an error rather than a requirement that
// silently never matches: every scheme's (attest/schemes), with their lengths in bytes.
var knownTCB, knownConfig, knownMeasurements = knownClaims()

var (
	knownTCBStatus = set("UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded", "unknown")
	ruleNameRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	policyNameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	advisoryRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

func knownClaims() (tcb map[string]bool, config, measurements map[string]int) {
	tcb, config, measurements = map[string]bool{}, map[string]int{}, map[string]int{}
	for _, s := range schemes.All {
		for _, n := range s.Claims.TCB {
			tcb[n] = true
		}
		maps.Copy(config, s.Claims.Config)
		maps.Copy(measurements, s.Claims.Measurements)
	}
	return tcb, config, measurements
}

// measurementRules returns the schemes' measurement rules for tees, or all of them when tees
// is empty (its own errors are reported).
func measurementRules(tees map[attest.TEE]bool) map[attest.TEE]attest.MeasurementRule {
	out := map[attest.TEE]attest.MeasurementRule{}
	for _, s := range schemes.All {
		if len(tees) == 0 || tees[s.TEE] {
			out[s.TEE] = s.Measurement
		}
	}
	return out
}

// checkMeasurement returns an error unless m has the measurement length of one of rules.
func checkMeasurement(rules map[attest.TEE]attest.MeasurementRule, m []byte) error {
	var want []string
	for _, t := range slices.Sorted(maps.Keys(rules)) {
		r := rules[t]
		if len(m) == r.Size {
			return nil
		}
		want = append(want, fmt.Sprintf("%d (%s %s)", r.Size, t, r.Register))
	}
	return fmt.Errorf("%d bytes, want %s", len(m), strings.Join(want, " or "))
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func set(s ...string) map[string]bool {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	return m
}

// checker collects semantic errors of one document with their positions.
type checker struct {
	file string
	src  []byte
	root *yaml.Node
	errs []*Error
}

func (c *checker) errorf(path []any, format string, args ...any) {
	n := nodeAt(c.root, path...)
	c.errs = append(c.errs, &Error{File: c.file, Line: n.Line, Column: n.Column, Msg: fmt.Sprintf(format, args...)})
}

func p(path ...any) []any { return path }

// check validates what the schema cannot, resolves reference values and compiles CEL rules.
func (pol *Policy) check(src []byte, root *yaml.Node, refs map[string]*ReferenceValues, used map[string]bool) []*Error {
	c := &checker{file: pol.File, src: src, root: root}
	if pol.APIVersion != APIVersion {
		c.errorf(p("apiVersion"), "apiVersion %q: want %q", pol.APIVersion, APIVersion)
		return c.errs
	}
	if pol.Kind != Kind {
		c.errorf(p("kind"), "kind %q: want %q", pol.Kind, Kind)
		return c.errs
	}
	name := pol.Metadata.Name
	if !policyNameRE.MatchString(name) {
		c.errorf(p("metadata", "name"), "metadata.name %q must be 1-63 characters of [a-z0-9._-]", name)
	}
	s := &pol.Spec
	if len(s.TEE) == 0 {
		c.errorf(p("spec", "tee"), "spec.tee lists no TEE type")
	}
	tees := map[attest.TEE]bool{}
	for i, t := range s.TEE {
		tt, err := schemes.ParseTEE(string(t))
		if err != nil {
			c.errorf(p("spec", "tee", i), "spec.tee[%d]: %v", i, err)
			continue
		}
		if tees[tt] {
			c.errorf(p("spec", "tee", i), "spec.tee[%d]: %s listed twice", i, tt)
		}
		s.TEE[i], tees[tt] = tt, true
	}
	pol.checkMeasuredImages(c) // components.go
	refsFailed := false
	for i, r := range s.ReferenceValues {
		rv, ok := refs[r]
		if !ok {
			suffix := refsSuffix
			if strings.HasSuffix(r, signedRefsSuffix) {
				suffix = signedRefsSuffix
			}
			c.errorf(p("spec", "referenceValues", i), "spec.referenceValues[%d]: %q is not a *%s file of this bundle", i, r, suffix)
			continue
		}
		if rv == nil {
			// Its own errors are reported; an empty measurement list would only repeat them.
			refsFailed = true
			continue
		}
		used[r] = true
		if err := rv.applyTo(pol); err != nil {
			c.errorf(p("spec", "referenceValues", i), "spec.referenceValues[%d]: %v", i, err)
		}
	}
	pol.checkComponentPins(c) // components.go
	if len(s.Measurements) == 0 && s.SGXSigner == nil && !refsFailed {
		c.errorf(p("spec"), "spec.measurements is empty: a policy must pin its image (or, for SGX, spec.sgxSigner)")
	}
	seenMeas := map[string]bool{}
	rules := measurementRules(tees)
	for i, m := range s.Measurements {
		if err := checkMeasurement(rules, m); err != nil {
			c.errorf(p("spec", "measurements", i), "spec.measurements[%d] is %v", i, err)
		}
		if seenMeas[string(m)] {
			c.errorf(p("spec", "measurements", i), "spec.measurements[%d] listed twice", i)
		}
		seenMeas[string(m)] = true
	}
	if sg := s.SGXSigner; sg != nil {
		if !tees[attest.SGX] {
			c.errorf(p("spec", "sgxSigner"), "spec.sgxSigner applies to SGX, which spec.tee does not list")
		}
		if len(sg.MRSigner) != 32 {
			c.errorf(p("spec", "sgxSigner", "mrsigner"), "spec.sgxSigner.mrsigner is %d bytes, want 32", len(sg.MRSigner))
		}
		if sg.ProductID == nil {
			c.errorf(p("spec", "sgxSigner"), "spec.sgxSigner.productID is required: the signer signs other products too (write 0 if the product ID is 0)")
		}
		if sg.MinSVN == nil {
			c.errorf(p("spec", "sgxSigner"), "spec.sgxSigner.minSVN is required: older, vulnerable versions carry the same signer (write 0 to accept every version)")
		}
	}
	r := &s.Require
	if r.LegacySMT != nil {
		c.errorf(p("spec", "require", "smt"), "spec.require.smt was removed: it read SNP guest-policy bit 16 (SMT allowed), not whether the platform runs SMT; write policySMTAllowed for the guest policy or platformSMTEnabled for the platform (TDX, SGX, SNP PLATFORM_INFO)")
	}
	if _, fam := r.Config["family_id"]; fam || r.Config["image_id"] != nil {
		if d, ok := r.Config["id_key_digest"]; !ok || allZero(d) {
			k := "family_id"
			if !fam {
				k = "image_id"
			}
			c.errorf(p("spec", "require", "config", k), "spec.require.config.%s needs a pinned, non-zero id_key_digest: without one any ID key (or none) can claim it", k)
		}
	}
	if r.VMPL != nil && *r.VMPL > 3 {
		c.errorf(p("spec", "require", "vmpl"), "spec.require.vmpl is %d, want 0-3", *r.VMPL)
	}
	for _, k := range sortedKeys(r.MinTCB) {
		if !knownTCB[k] {
			c.errorf(p("spec", "require", "minTCB", k), "spec.require.minTCB: unknown TCB component %q (known: %s)", k, strings.Join(sortedKeys(knownTCB), ", "))
		}
	}
	if r.MinTeeTCBSVN != nil && len(r.MinTeeTCBSVN) != 16 {
		c.errorf(p("spec", "require", "minTeeTcbSvn"), "spec.require.minTeeTcbSvn is %d bytes, want 16", len(r.MinTeeTCBSVN))
	}
	for _, k := range sortedKeys(r.Config) {
		n, known := knownConfig[k]
		switch {
		case !known:
			c.errorf(p("spec", "require", "config", k), "spec.require.config: unknown configuration claim %q (known: %s)", k, strings.Join(sortedKeys(knownConfig), ", "))
		case len(r.Config[k]) == 0:
			c.errorf(p("spec", "require", "config", k), "spec.require.config.%s is empty", k)
		case len(r.Config[k]) != n:
			c.errorf(p("spec", "require", "config", k), "spec.require.config.%s is %d bytes, want %d", k, len(r.Config[k]), n)
		}
	}
	for _, k := range sortedKeys(r.Measurements) {
		n, known := knownMeasurements[k]
		if !known {
			c.errorf(p("spec", "require", "measurements", k), "spec.require.measurements: unknown measurement %q (known: %s)", k, strings.Join(sortedKeys(knownMeasurements), ", "))
		} else if len(r.Measurements[k]) != n {
			c.errorf(p("spec", "require", "measurements", k), "spec.require.measurements.%s is %d bytes, want %d", k, len(r.Measurements[k]), n)
		}
	}
	for _, i := range slices.Sorted(maps.Keys(r.PCRs)) {
		n, known := knownMeasurements[attest.PCRClaim(i)]
		if !known {
			c.errorf(p("spec", "require", "pcrs", i), "spec.require.pcrs: no TEE type quotes PCR %d", i)
		} else if len(r.PCRs[i]) != n {
			c.errorf(p("spec", "require", "pcrs", i), "spec.require.pcrs.%d is %d bytes, want %d (SHA-256)", i, len(r.PCRs[i]), n)
		}
	}
	for i, st := range r.TCBStatus {
		if !knownTCBStatus[st] {
			c.errorf(p("spec", "require", "tcbStatus", i), "spec.require.tcbStatus[%d]: unknown status %q (known: %s)", i, st, strings.Join(sortedKeys(knownTCBStatus), ", "))
		}
	}
	if g := time.Duration(r.TCBRecoveryGrace); g < 0 || g > MaxTCBRecoveryGrace {
		c.errorf(p("spec", "require", "tcbRecoveryGrace"), "spec.require.tcbRecoveryGrace: %v outside [0, %v]", g, MaxTCBRecoveryGrace)
	}
	for i, a := range r.Advisories {
		if !advisoryRE.MatchString(a) {
			c.errorf(p("spec", "require", "advisories", i), "spec.require.advisories[%d]: %q is not an advisory ID such as INTEL-SA-00615", i, a)
		}
	}
	ruleNames := map[string]bool{}
	for i, ru := range s.Rules {
		if !ruleNameRE.MatchString(ru.Name) {
			c.errorf(p("spec", "rules", i, "name"), "spec.rules[%d].name %q must be 1-63 characters of [a-z0-9-]", i, ru.Name)
		}
		if ruleNames[ru.Name] {
			c.errorf(p("spec", "rules", i, "name"), "spec.rules[%d]: rule %q defined twice", i, ru.Name)
		}
		ruleNames[ru.Name] = true
		cr, issues := compileRule(ru)
		for _, is := range issues {
			c.celError(i, is)
		}
		if cr != nil {
			pol.rules = append(pol.rules, cr)
		}
	}
	for _, g := range []struct {
		field string
		list  []Grant
	}{{"secrets", s.Grants.Secrets}, {"dataKeys", s.Grants.DataKeys}} {
		names := map[string]bool{}
		for i, gr := range g.list {
			if err := kms.CheckName(gr.Name); err != nil {
				c.errorf(p("spec", "grants", g.field, i), "spec.grants.%s[%d]: %v", g.field, i, err)
			}
			if names[gr.Name] {
				c.errorf(p("spec", "grants", g.field, i), "spec.grants.%s[%d]: %q granted twice", g.field, i, gr.Name)
			}
			names[gr.Name] = true
			if len(gr.Context) > 0 && g.field == "secrets" {
				c.errorf(p("spec", "grants", g.field, i, "context"), "spec.grants.secrets[%d]: context constraints apply to dataKeys only: secrets are not released under a key context", i)
			}
			if gr.Consent != nil {
				c.checkConsent(pol, g.field, i, gr.Consent)
			}
			for _, k := range sortedKeys(gr.Context) {
				if _, err := (kms.Context{k: ""}).Canonical(); err != nil {
					c.errorf(p("spec", "grants", g.field, i, "context", k), "spec.grants.%s[%d].context: %v", g.field, i, err)
					continue
				}
				if len(gr.Context[k]) == 0 {
					c.errorf(p("spec", "grants", g.field, i, "context", k), "spec.grants.%s[%d].context.%s lists no value", g.field, i, k)
				}
				for _, v := range gr.Context[k] {
					if _, err := (kms.Context{k: v}).Canonical(); err != nil {
						c.errorf(p("spec", "grants", g.field, i, "context", k), "spec.grants.%s[%d].context.%s: %v", g.field, i, k, err)
					}
				}
			}
		}
	}
	return c.errs
}

// celError places a CEL compile issue at its line and column inside the YAML file.
func (c *checker) celError(rule int, is celIssue) {
	n := nodeAt(c.root, "spec", "rules", rule, "expr")
	line, col := n.Line, n.Column
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// Block scalars start on the next line, indented.
		line = n.Line + is.line
		col = indentOf(c.src, n.Line+1) + is.col + 1
	case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		line += is.line - 1
		if is.line == 1 {
			col += is.col + 1
		}
	default:
		line += is.line - 1
		if is.line == 1 {
			col += is.col
		}
	}
	if is.line == 0 {
		line, col = n.Line, n.Column
	}
	c.errs = append(c.errs, &Error{File: c.file, Line: line, Column: col, Msg: fmt.Sprintf("spec.rules[%d] (%s): %s", rule, nodeAt(c.root, "spec", "rules", rule, "name").Value, is.msg)})
}

func indentOf(src []byte, line int) int {
	lines := bytes.Split(src, []byte("\n"))
	if line < 1 || line > len(lines) {
		return 0
	}
	l := lines[line-1]
	return len(l) - len(bytes.TrimLeft(l, " "))
}
