package policies

import (
	"fmt"
	"regexp"
	"time"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/release"
)

// ConsentRequirement is what a data-key grant needs from the patient's consent statement
// (docs/consent.md). In YAML:
//
//	dataKeys:
//	  - name: hello/patient-records
//	    consent:
//	      purposes: [treatment]      # every one must be in the statement
//	      patientField: patient      # the context field that carries the patient pseudonym
//	      recipient: hello           # the statement's "aud"; default: the policy's name
//	      breakGlass: {maxDuration: 30m}   # absent: no emergency release outside consent
type ConsentRequirement struct {
	Purposes     []string `yaml:"purposes"`
	PatientField string   `yaml:"patientField"`
	Recipient    string   `yaml:"recipient,omitempty"`
	// BreakGlass allows an emergency release without a statement, under an approved
	// break-glass of at most MaxDuration (which is at most MaxBreakGlass).
	BreakGlass *BreakGlassRule `yaml:"breakGlass,omitempty"`
}

// BreakGlassRule bounds the emergency releases of one grant.
type BreakGlassRule struct {
	// MaxDuration is a Go duration ("30m", "1h"), at most MaxBreakGlass.
	MaxDuration string `yaml:"maxDuration"`
}

// MaxBreakGlass bounds every break-glass window, whatever a policy says.
const MaxBreakGlass = time.Hour

// Max is the rule's duration (parsed when the bundle was checked).
func (r *BreakGlassRule) Max() time.Duration {
	if r == nil {
		return 0
	}
	d, err := time.ParseDuration(r.MaxDuration)
	if err != nil || d <= 0 || d > MaxBreakGlass {
		return 0
	}
	return d
}

// PurposeRE is the form of a purpose of use: treatment, teleconsultation, quality-assurance,
// research, or any other lowercase word a tenant and its policies agree on.
var PurposeRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

var recipientRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$`)

func (c *checker) checkConsent(pol *Policy, field string, i int, r *ConsentRequirement) {
	at := p("spec", "grants", field, i, "consent")
	if field != "dataKeys" {
		c.errorf(at, "spec.grants.%s[%d].consent: consent applies to dataKeys only", field, i)
		return
	}
	if len(r.Purposes) == 0 {
		c.errorf(at, "spec.grants.dataKeys[%d].consent.purposes lists no purpose", i)
	}
	for _, pu := range r.Purposes {
		if !PurposeRE.MatchString(pu) {
			c.errorf(at, "spec.grants.dataKeys[%d].consent.purposes: %q must match %s", i, pu, PurposeRE)
		}
	}
	if _, err := (kms.Context{r.PatientField: ""}).Canonical(); err != nil || r.PatientField == "" {
		c.errorf(at, "spec.grants.dataKeys[%d].consent.patientField %q must name a context field", i, r.PatientField)
	}
	if r.Recipient == "" {
		r.Recipient = pol.Metadata.Name
	} else if !recipientRE.MatchString(r.Recipient) {
		c.errorf(at, "spec.grants.dataKeys[%d].consent.recipient %q must match %s", i, r.Recipient, recipientRE)
	}
	if b := r.BreakGlass; b != nil && b.Max() == 0 {
		c.errorf(at, "spec.grants.dataKeys[%d].consent.breakGlass.maxDuration %q must be a Go duration above 0 and at most %s", i, b.MaxDuration, MaxBreakGlass)
	}
}

// Consent returns the consent requirement of a data-key grant of the named policy in the
// current bundle, nil when it needs none (or the policy or grant is gone; CheckContext denies
// those).
func (b *Bundle) Consent(policy string, kind release.GrantKind, name string) *ConsentRequirement {
	p := b.Policy(policy)
	if p == nil {
		return nil
	}
	g := p.grant(kind, name)
	if g == nil {
		return nil
	}
	return g.Consent
}

func (r *ConsentRequirement) String() string {
	return fmt.Sprintf("purposes %v for recipient %s, patient in context.%s", r.Purposes, r.Recipient, r.PatientField)
}
