package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/schemes"
)

// Verifiers holds the `verifiers:` sections of the configuration by name (snp, tdx, sgx, ...;
// see schemes.Sections), each decoded strictly into its scheme's configuration type. A scheme is
// on only when its section is present: an empty section (`snp: {}`) turns it on with its
// defaults, an absent one leaves it off, so that an upgrade never switches on a TEE nobody
// configured. `disabled: true` in a section is still accepted, with a deprecation warning, and
// keeps the scheme off. Dev-only schemes (the simulated TEE) are on exactly when trustd runs with
// --dev, section or not.
type Verifiers map[string]attest.SchemeConfig

// UnmarshalYAML decodes each section strictly into its scheme's configuration.
func (v *Verifiers) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: verifiers: want a mapping of sections (%s)", n.Line, strings.Join(schemes.Sections(), ", "))
	}
	out := Verifiers{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		s := schemes.BySection(k.Value)
		if s == nil {
			return fmt.Errorf("line %d: verifiers.%s: no such TEE scheme (want %s)", k.Line, k.Value, strings.Join(schemes.Sections(), ", "))
		}
		if _, dup := out[k.Value]; dup {
			return fmt.Errorf("line %d: verifiers.%s: given twice", k.Line, k.Value)
		}
		c := s.NewConfig()
		if err := decodeStrict(val, c); err != nil {
			return fmt.Errorf("line %d: verifiers.%s: %w", k.Line, k.Value, err)
		}
		out[k.Value] = c
	}
	*v = out
	return nil
}

// decodeStrict decodes n into v refusing unknown keys (yaml.Node.Decode cannot).
func decodeStrict(n *yaml.Node, v any) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // `snp:` with nothing after it: on, with defaults
	}
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	return d.Decode(v)
}

func (v Verifiers) validate(dev bool) []error {
	var errs []error
	names := make([]string, 0, len(v))
	for name := range v {
		names = append(names, name)
	}
	sort.Strings(names)
	on := 0
	for _, name := range names {
		s := schemes.BySection(name)
		switch {
		case s == nil:
			errs = append(errs, fmt.Errorf("verifiers.%s: no such TEE scheme (want %s)", name, strings.Join(schemes.Sections(), ", ")))
		case v[name] == nil:
			errs = append(errs, fmt.Errorf("verifiers.%s: no configuration", name))
		case s.DevOnly && !dev:
			errs = append(errs, fmt.Errorf("verifiers.%s: %s evidence can be forged by anyone and is accepted only with --dev", name, s.TEE))
		case !s.DevOnly && !v[name].Disabled():
			on++
		}
	}
	if !dev && on == 0 {
		errs = append(errs, fmt.Errorf("verifiers: no TEE verifier is configured, so every attestation would be refused: add a section for each TEE you accept (%s), for example `verifiers: {snp: {}}`; before issue 15 every hardware verifier was on unless disabled",
			strings.Join(hardwareSections(), ", ")))
	}
	return errs
}

func hardwareSections() []string {
	var out []string
	for _, s := range schemes.All {
		if !s.DevOnly {
			out = append(out, s.Section)
		}
	}
	return out
}

// verifiers builds the verifier of every scheme that is on, in the order of schemes.All.
func (d *Daemon) verifiers() ([]attest.Verifier, error) {
	deps := attest.Deps{Logger: d.log, CollateralCache: func(source string, hit bool) { d.metrics.CollateralCache(source, hit) }, DataDir: d.cfg.DataDir, Dev: d.cfg.Dev, HighWater: d.coll.highWater, CollateralStore: d.coll.store, BundleDir: d.coll.bundleDir}
	var out []attest.Verifier
	for _, s := range schemes.All {
		c, present := d.cfg.Verifiers[s.Section]
		switch {
		case s.DevOnly && !d.cfg.Dev:
			if present {
				return nil, fmt.Errorf("verifiers.%s: accepted only with --dev", s.Section)
			}
			continue
		case s.DevOnly:
			if !present {
				c = s.NewConfig()
			}
		case !present:
			continue
		case c == nil:
			return nil, fmt.Errorf("verifiers.%s: no configuration", s.Section)
		case c.Disabled():
			d.log.Warn("verifiers."+s.Section+".disabled is deprecated: remove the section to turn the verifier off", "tee", s.TEE)
			continue
		}
		v, err := c.NewVerifier(deps)
		if err != nil {
			return nil, fmt.Errorf("verifiers.%s: %w", s.Section, err)
		}
		if v.TEE() != s.TEE {
			return nil, fmt.Errorf("verifiers.%s: built a %s verifier, want %s", s.Section, v.TEE(), s.TEE)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, errors.New("verifiers: no TEE verifier is on")
	}
	for _, v := range out {
		d.log.Info("verifier enabled", "tee", v.TEE())
	}
	return out, nil
}
