package policies

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/veraison/go-cose"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/schemes"
	"github.com/medicus-cloud/trust/internal/cosekey"
)

// Signed reference-value sets.
//
// A vendor's build pipeline computes what its image measures to (trustctl measure snp|tdx, the
// digests of the kernel, initrd and command line) and signs the set with the vendor's key: a
// COSE_Sign1 (RFC 9052) with the payload attached, protected headers alg (ES256 or EdDSA), kid
// (keyfile.ID of the vendor key) and content type RefValuesContentType, payload a
// ReferenceValueSet in JSON. The file goes into the policy bundle as NAME.refs.cose and a
// policy imports it through spec.referenceValues; the policy's spec.images names the vendor
// keys trusted for that image. Loading the bundle verifies the signature under those keys and
// the validity, and refuses the bundle otherwise; evaluation checks the validity again.

// RefValuesContentType is the COSE content type of a signed reference-value set.
const RefValuesContentType = "application/vnd.medicus.trust.refvalues+json"

// ReferenceValueSetKind is the kind of a signed reference-value set's payload.
const ReferenceValueSetKind = "ReferenceValueSet"

// ErrBadRefValues is wrapped by every signature failure of a signed reference-value set.
var ErrBadRefValues = errors.New("reference-value set signature invalid")

// signedRefsSuffix names signed reference-value sets in a bundle.
const signedRefsSuffix = ".refs.cose"

// ReferenceValueSet is what a vendor signs for one build of one image.
type ReferenceValueSet struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Image is the image ID that policies name (spec.images[].id), Version its release.
	Image   string `json:"image"`
	Version string `json:"version"`
	// SourceCommit is the VCS commit the image was built from (hex); Source optionally where
	// (a repository or build URL).
	SourceCommit string `json:"sourceCommit"`
	Source       string `json:"source,omitempty"`
	// NotBefore and NotAfter bound when the set may be used.
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	// Values are alternatives: one per TEE type and launch configuration (vCPU count, ...).
	Values []ImageValues `json:"values"`
}

// ImageValues is one way the image measures: a TEE type, its launch measurement (SNP
// MEASUREMENT, TDX MRTD, SGX MRENCLAVE), further registers (rtmr0..rtmr3) and boot components
// (kernel, initrd, cmdline ...: the digests the event log carries) that must all match.
type ImageValues struct {
	TEE         attest.TEE            `json:"tee"`
	Measurement attest.Hex            `json:"measurement"`
	Registers   map[string]attest.Hex `json:"registers,omitempty"`
	Components  map[string]attest.Hex `json:"components,omitempty"`
}

var (
	imageIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._/:@-]{0,127}$`)
	commitRE  = regexp.MustCompile(`^[0-9a-f]{7,64}$`)
	versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
)

// Check validates a set's fields.
func (s *ReferenceValueSet) Check() error {
	switch {
	case s.APIVersion != APIVersion || s.Kind != ReferenceValueSetKind:
		return fmt.Errorf("apiVersion %q kind %q: want %q %q", s.APIVersion, s.Kind, APIVersion, ReferenceValueSetKind)
	case !imageIDRE.MatchString(s.Image):
		return fmt.Errorf("image %q must be 1-128 characters of [a-z0-9._/:@-]", s.Image)
	case !versionRE.MatchString(s.Version):
		return fmt.Errorf("version %q must be 1-64 characters of [A-Za-z0-9._+-]", s.Version)
	case !commitRE.MatchString(s.SourceCommit):
		return fmt.Errorf("sourceCommit %q must be 7-64 lowercase hex digits", s.SourceCommit)
	case s.NotBefore.IsZero() || s.NotAfter.IsZero() || !s.NotAfter.After(s.NotBefore):
		return fmt.Errorf("validity %s to %s: both are required and notAfter must follow notBefore", s.NotBefore.Format(time.RFC3339), s.NotAfter.Format(time.RFC3339))
	case len(s.Values) == 0:
		return errors.New("values is empty")
	}
	for i := range s.Values {
		v := &s.Values[i]
		t, err := schemes.ParseTEE(string(v.TEE))
		if err != nil {
			return fmt.Errorf("values[%d].tee: %v", i, err)
		}
		v.TEE = t
		if len(v.Measurement) != 32 && len(v.Measurement) != 48 {
			return fmt.Errorf("values[%d].measurement is %d bytes, want 32 or 48", i, len(v.Measurement))
		}
		for _, k := range sortedKeys(v.Registers) {
			if n, ok := knownMeasurements[k]; !ok || n != len(v.Registers[k]) {
				return fmt.Errorf("values[%d].registers.%s: unknown register or wrong length (%d bytes)", i, k, len(v.Registers[k]))
			}
		}
		for _, k := range sortedKeys(v.Components) {
			if err := checkComponent(k, v.Components[k]); err != nil {
				return fmt.Errorf("values[%d].components.%s: %v", i, k, err)
			}
			// As in a policy: a component is exact only with the registers it comes from.
			if miss := unpinned(v.TEE, k, func(claim string) bool { _, ok := v.Registers[claim]; return ok }); len(miss) > 0 {
				return fmt.Errorf("values[%d].components.%s: on %s it is drawn from %s, which the guest can extend after boot: the value must carry registers %s too", i, k, v.TEE, strings.Join(miss, ", "), strings.Join(miss, ", "))
			}
		}
	}
	return nil
}

// ValidAt reports whether t is inside the set's validity.
func (s *ReferenceValueSet) ValidAt(t time.Time) error {
	if t.Before(s.NotBefore) {
		return fmt.Errorf("reference values for %s %s are not valid before %s", s.Image, s.Version, s.NotBefore.UTC().Format(time.RFC3339))
	}
	if t.After(s.NotAfter) {
		return fmt.Errorf("reference values for %s %s expired at %s", s.Image, s.Version, s.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// describe names the set as explanations show it.
func (s *ReferenceValueSet) describe() string {
	return fmt.Sprintf("%s %s (commit %s)", s.Image, s.Version, s.SourceCommit)
}

// SignReferenceValues checks the set and signs it with the vendor's key (ECDSA P-256 or
// Ed25519) as a COSE_Sign1 with the payload attached.
func SignReferenceValues(rand io.Reader, key crypto.Signer, s *ReferenceValueSet) ([]byte, error) {
	if err := s.Check(); err != nil {
		return nil, fmt.Errorf("reference values: %w", err)
	}
	payload, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	b, _, err := cosekey.Sign1(rand, key, RefValuesContentType, append(payload, '\n'), false)
	return b, err
}

// OpenReferenceValues verifies a signed set under the vendor keys and its validity at now, and
// returns it with the key ID that signed it. Every failure is an error: a set signed by a key
// outside keys, a bad signature, an expired set.
func OpenReferenceValues(data []byte, keys TrustKeys, now time.Time) (*ReferenceValueSet, string, error) {
	msg, s, err := parseSignedSet(data)
	if err != nil {
		return nil, "", err
	}
	kid, err := verifySet(msg, keys)
	if err != nil {
		return nil, "", err
	}
	if err := s.ValidAt(now); err != nil {
		return nil, "", err
	}
	return s, kid, nil
}

// parseSignedSet decodes a signed set without verifying it.
func parseSignedSet(data []byte) (*cose.Sign1Message, *ReferenceValueSet, error) {
	if len(data) > MaxDocumentSize {
		return nil, nil, fmt.Errorf("larger than %d bytes", MaxDocumentSize)
	}
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(data); err != nil {
		return nil, nil, fmt.Errorf("%w: not a COSE_Sign1: %v", ErrBadRefValues, err)
	}
	if ct, _ := msg.Headers.Protected[cose.HeaderLabelContentType].(string); ct != RefValuesContentType {
		return nil, nil, fmt.Errorf("%w: content type %q, want %q", ErrBadRefValues, ct, RefValuesContentType)
	}
	if msg.Payload == nil {
		return nil, nil, fmt.Errorf("%w: no payload", ErrBadRefValues)
	}
	dec := json.NewDecoder(bytes.NewReader(msg.Payload))
	dec.DisallowUnknownFields()
	var s ReferenceValueSet
	if err := dec.Decode(&s); err != nil {
		return nil, nil, fmt.Errorf("payload: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, nil, errors.New("payload: trailing data after the JSON object")
	}
	if err := s.Check(); err != nil {
		return nil, nil, err
	}
	return &msg, &s, nil
}

// verifySet checks the signature under keys and returns the key ID.
func verifySet(msg *cose.Sign1Message, keys TrustKeys) (string, error) {
	kidB, ok := msg.Headers.Protected[cose.HeaderLabelKeyID].([]byte)
	if !ok {
		return "", fmt.Errorf("%w: no protected key ID", ErrBadRefValues)
	}
	pub, ok := keys[string(kidB)]
	if !ok {
		return "", fmt.Errorf("%w: signed by key %s, which is not a vendor key trusted for this image (trusted: %s)", ErrBadRefValues, kidB, strings.Join(slices.Sorted(maps.Keys(keys)), ", "))
	}
	alg, _ := coseAlg(pub)
	if got, err := msg.Headers.Protected.Algorithm(); err != nil || got != alg {
		return "", fmt.Errorf("%w: algorithm does not match key %s", ErrBadRefValues, kidB)
	}
	v, err := cose.NewVerifier(alg, pub)
	if err != nil {
		return "", err
	}
	if err := msg.Verify(nil, v); err != nil {
		return "", fmt.Errorf("%w: does not verify under vendor key %s", ErrBadRefValues, kidB)
	}
	return string(kidB), nil
}

// componentNames are the boot components a policy or a set may name (attest.Claims.Components).
var componentNames = set("kernel", "initrd", "cmdline", "shim", "grub", "systemd-boot")

func checkComponent(name string, digest attest.Hex) error {
	if !componentNames[name] && !(strings.HasPrefix(name, "uki.") && len(name) > 4) {
		return fmt.Errorf("unknown component (want kernel, initrd, cmdline, shim, grub, systemd-boot or uki.<section>)")
	}
	if len(digest) != 32 && len(digest) != 48 {
		return fmt.Errorf("digest is %d bytes, want 32 (SHA-256) or 48 (SHA-384)", len(digest))
	}
	return nil
}
