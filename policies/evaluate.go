package policies

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/token"
)

// Denial explains a denial: which claim failed, the value seen and the value expected.
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
	Grants []token.Grant
}

// Evaluate appraises claims against the bundle. The first policy that accepts the claims' TEE
// type and measurement decides; a denial is a *Denial.
func (b *Bundle) Evaluate(c *attest.Claims) (*Decision, error) {
	var p *Policy
	for _, cand := range b.Policies {
		if !cand.acceptsTEE(c.TEE) {
			continue
		}
		for _, m := range cand.Spec.Measurements {
			if bytes.Equal(m, c.Measurement) {
				p = cand
				break
			}
		}
		if p != nil {
			break
		}
	}
	if p == nil {
		return nil, &Denial{Claim: "measurement", Seen: c.Measurement.String(),
			Expected: fmt.Sprintf("a measurement approved for %s by one of %d policies", c.TEE, len(b.Policies))}
	}
	if d := p.checkRequire(c); d != nil {
		d.Policy = p.Metadata.Name
		return nil, d
	}
	return &Decision{Policy: p.Metadata.Name, Digest: b.Digest, Grants: p.grants()}, nil
}

func (p *Policy) acceptsTEE(t attest.TEE) bool {
	for _, a := range p.Spec.TEE {
		if a == t {
			return true
		}
	}
	return false
}

func (p *Policy) checkRequire(c *attest.Claims) *Denial {
	r := p.Spec.Require
	if c.Debug && !r.AllowDebug {
		return &Denial{Claim: "debug", Seen: "true", Expected: "false"}
	}
	if c.Migration && !r.AllowMigration {
		return &Denial{Claim: "migration", Seen: "true", Expected: "false"}
	}
	if r.SMT != nil && c.SMT != *r.SMT {
		return &Denial{Claim: "smt", Seen: fmt.Sprint(c.SMT), Expected: fmt.Sprint(*r.SMT)}
	}
	for _, k := range sortedKeys(r.MinTCB) {
		seen, ok := c.TCB[k]
		if !ok {
			return &Denial{Claim: "tcb." + k, Seen: "absent", Expected: fmt.Sprintf(">= %d", r.MinTCB[k])}
		}
		if seen < r.MinTCB[k] {
			return &Denial{Claim: "tcb." + k, Seen: fmt.Sprint(seen), Expected: fmt.Sprintf(">= %d", r.MinTCB[k])}
		}
	}
	for _, k := range sortedKeys(r.Config) {
		seen, ok := c.Config[k]
		if !ok || !bytes.Equal(seen, r.Config[k]) {
			s := "absent"
			if ok {
				s = seen.String()
			}
			return &Denial{Claim: "config." + k, Seen: s, Expected: r.Config[k].String()}
		}
	}
	return nil
}

func (p *Policy) grants() []token.Grant {
	var g []token.Grant
	for _, n := range p.Spec.Grants.Secrets {
		g = append(g, token.Grant{Kind: token.KindSecret, Name: n})
	}
	for _, n := range p.Spec.Grants.DataKeys {
		g = append(g, token.Grant{Kind: token.KindDataKey, Name: n})
	}
	return g
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// Summary lists policy names and their grants, one per line, for people.
func (b *Bundle) Summary() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "bundle %x: %d policies\n", b.Digest, len(b.Policies))
	for _, p := range b.Policies {
		fmt.Fprintf(&sb, "  %s: tee %v, %d measurements, secrets %v, data keys %v\n", p.Metadata.Name, p.Spec.TEE,
			len(p.Spec.Measurements), p.Spec.Grants.Secrets, p.Spec.Grants.DataKeys)
	}
	return sb.String()
}
