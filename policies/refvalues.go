package policies

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/schemes"
)

// ReferenceValuesKind is the kind of a reference-value file.
const ReferenceValuesKind = "ReferenceValues"

// ReferenceValues is what the image build pipeline publishes for one image build on one TEE
// type, as a *.refs.json file placed in the policy bundle and imported by a policy through
// spec.referenceValues. Because the file is part of the signed bundle, the pipeline can update
// measurements without anyone copying hex by hand, and reviewers still see the change. Example:
//
//	{
//	  "apiVersion": "trust.medicus.cloud/v1",
//	  "kind": "ReferenceValues",
//	  "image": "registry.medicus.cloud/teleconsult:2.4.1",
//	  "source": "https://ci.medicus.cloud/builds/8812",
//	  "tee": "sev-snp",
//	  "measurements": ["<48-byte launch measurement, hex>", "..."],
//	  "registers": {"rtmr1": "<hex>"},
//	  "config": {"host_data": "<hex>"}
//	}
//
// measurements are launch measurements (SNP MEASUREMENT, one per vCPU count and type; TDX MRTD;
// SGX MRENCLAVE); registers are further measurements (rtmr0..rtmr3, mrseam) that must match
// exactly; config are configuration claims (host_data, mrconfigid ...) that must match exactly.
type ReferenceValues struct {
	APIVersion   string                `json:"apiVersion"`
	Kind         string                `json:"kind"`
	Image        string                `json:"image"`
	Source       string                `json:"source,omitempty"`
	TEE          attest.TEE            `json:"tee"`
	Measurements []attest.Hex          `json:"measurements"`
	Registers    map[string]attest.Hex `json:"registers,omitempty"`
	Config       map[string]attest.Hex `json:"config,omitempty"`

	file string
	// signed is a signed reference-value set (*.refs.cose), verified by applyTo (components.go).
	signed []byte
}

// ImportReferenceValues parses a reference-value file strictly (unknown fields are errors) and
// checks it. name is used in errors, which are *Error with line and column.
func ImportReferenceValues(name string, data []byte) (*ReferenceValues, error) {
	if len(data) > MaxDocumentSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("larger than %d bytes", MaxDocumentSize)}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var rv ReferenceValues
	if err := dec.Decode(&rv); err != nil {
		return nil, jsonError(name, data, err, dec.InputOffset())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, jsonError(name, data, errors.New("trailing data after the JSON object"), dec.InputOffset())
	}
	rv.file = name
	bad := func(msg string, args ...any) error {
		return &Error{File: name, Msg: fmt.Sprintf(msg, args...)}
	}
	if rv.APIVersion != APIVersion || rv.Kind != ReferenceValuesKind {
		return nil, bad("apiVersion %q kind %q: want %q %q", rv.APIVersion, rv.Kind, APIVersion, ReferenceValuesKind)
	}
	if rv.Image == "" {
		return nil, bad("image is required")
	}
	t, err := schemes.ParseTEE(string(rv.TEE))
	if err != nil {
		return nil, bad("tee: %v", err)
	}
	rv.TEE = t
	if len(rv.Measurements) == 0 {
		return nil, bad("measurements is empty")
	}
	for i, m := range rv.Measurements {
		if err := checkMeasurement(measurementRules(map[attest.TEE]bool{t: true}), m); err != nil {
			return nil, bad("measurements[%d] is %v", i, err)
		}
	}
	for _, k := range sortedKeys(rv.Registers) {
		if _, ok := knownMeasurements[k]; !ok {
			return nil, bad("registers: unknown measurement %q", k)
		}
	}
	for _, k := range sortedKeys(rv.Config) {
		if _, ok := knownConfig[k]; !ok {
			return nil, bad("config: unknown configuration claim %q", k)
		}
	}
	return &rv, nil
}

// jsonError turns an encoding/json error into an *Error with line and column.
func jsonError(name string, data []byte, err error, fallback int64) *Error {
	off := fallback
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset - 1 // the offending byte, not the one after it
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 {
		off = 0
	}
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line, col := 1, 1
	for _, c := range data[:off] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return &Error{File: name, Line: line, Column: col, Msg: err.Error()}
}

// applyTo adds the reference values to a policy. A register or configuration value that the
// policy already pins differently is an error: two sources disagree and nobody can tell which one
// the security team meant.
func (rv *ReferenceValues) applyTo(p *Policy) error {
	if rv.signed != nil {
		return p.applySigned(rv.file, rv.signed)
	}
	ok := false
	for _, t := range p.Spec.TEE {
		ok = ok || t == rv.TEE
	}
	if !ok {
		return fmt.Errorf("reference values are for %s, which spec.tee does not list", rv.TEE)
	}
	have := map[string]bool{}
	for _, m := range p.Spec.Measurements {
		have[string(m)] = true
	}
	for _, m := range rv.Measurements {
		if !have[string(m)] {
			p.Spec.Measurements = append(p.Spec.Measurements, m)
			have[string(m)] = true
		}
	}
	merge := func(dst *map[string]attest.Hex, src map[string]attest.Hex, what string) error {
		for _, k := range sortedKeys(src) {
			if *dst == nil {
				*dst = map[string]attest.Hex{}
			}
			if cur, set := (*dst)[k]; set && !bytes.Equal(cur, src[k]) {
				return fmt.Errorf("%s %s is %s here but %s in %s", what, k, cur, src[k], rv.file)
			}
			(*dst)[k] = src[k]
		}
		return nil
	}
	if err := merge(&p.Spec.Require.Measurements, rv.Registers, "measurement"); err != nil {
		return err
	}
	if err := merge(&p.Spec.Require.Config, rv.Config, "config"); err != nil {
		return err
	}
	p.imported = append(p.imported, fmt.Sprintf("%s (%s, %d measurements)", rv.file, rv.Image, len(rv.Measurements)))
	return nil
}
