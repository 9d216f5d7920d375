package policies

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/eventlog"
	"github.com/medicus-cloud/trust/attest/schemes"
)

// Measured images: policies that name boot components and images rather than raw registers.
//
//	spec:
//	  tee: [tdx]
//	  images:
//	    - id: registry.medicus.cloud/teleconsult
//	      versions: ["1.4.0"]          # optional: releases accepted; empty means any signed one
//	      vendorKeys:                  # PEM public keys the vendor signs reference values with
//	        - |
//	          -----BEGIN PUBLIC KEY-----
//	          ...
//	  referenceValues: [teleconsult-1.4.0.refs.cose]
//	  components:                      # optional: exact boot-component digests
//	    cmdline: <sha-384 hex>
//
// A signed set imported through spec.referenceValues must name an image of spec.images and
// verify under one of its vendor keys, be valid when the bundle loads and list a version the
// image accepts; otherwise the bundle does not load. Its launch measurements for the TEE types of
// spec.tee are approved by the policy; evidence with one of them must then match one of the
// set's values in full (registers and components), and the set must still be valid. Explain
// names the image, version and commit that matched, or the component that differed.

// ImageTrust names an image and the vendor keys trusted to sign its reference values.
type ImageTrust struct {
	ID         string   `yaml:"id"`
	Versions   []string `yaml:"versions,omitempty"`
	VendorKeys []string `yaml:"vendorKeys"`

	keys TrustKeys
}

// imageSet is a verified signed set imported by a policy.
type imageSet struct {
	file string
	set  *ReferenceValueSet
	kid  string
}

// timeNow is the clock of set validity; tests replace it.
var timeNow = time.Now

// checkMeasuredImages validates spec.images and spec.components (called from check).
func (pol *Policy) checkMeasuredImages(c *checker) {
	s := &pol.Spec
	seen := map[string]bool{}
	for i := range s.Images {
		im := &s.Images[i]
		if !imageIDRE.MatchString(im.ID) {
			c.errorf(p("spec", "images", i, "id"), "spec.images[%d].id %q must be 1-128 characters of [a-z0-9._/:@-]", i, im.ID)
		}
		if seen[im.ID] {
			c.errorf(p("spec", "images", i, "id"), "spec.images[%d]: image %q listed twice", i, im.ID)
		}
		seen[im.ID] = true
		if len(im.VendorKeys) == 0 {
			c.errorf(p("spec", "images", i), "spec.images[%d].vendorKeys is empty: name the keys the vendor signs reference values with", i)
			continue
		}
		k, err := ParseTrustKeys([]byte(strings.Join(im.VendorKeys, "\n")))
		if err != nil {
			c.errorf(p("spec", "images", i, "vendorKeys"), "spec.images[%d].vendorKeys: %v", i, err)
			continue
		}
		im.keys = k
	}
	for _, k := range sortedKeys(s.Components) {
		if err := checkComponent(k, s.Components[k]); err != nil {
			c.errorf(p("spec", "components", k), "spec.components.%s: %v", k, err)
		}
	}
}

// checkComponentPins refuses a component the policy names where the evidence could satisfy it
// by relabelling: on TEEs whose components come from registers the guest can extend after boot
// (tdx's RTMRs, a vTPM's PCRs), each register a named component is drawn from must be pinned
// too, by spec.require (its own or an unsigned reference-value file's) or, for evidence that
// matches an image, by that image's signed values. Called once the reference values are in.
func (pol *Policy) checkComponentPins(c *checker) {
	s := &pol.Spec
	byPolicy := func(claim string) bool {
		if i, ok := strings.CutPrefix(claim, "pcr"); ok {
			n, err := strconv.Atoi(i)
			_, pinned := s.Require.PCRs[uint32(n)]
			return err == nil && pinned
		}
		_, pinned := s.Require.Measurements[claim]
		return pinned
	}
	for _, k := range sortedKeys(s.Components) {
		if checkComponent(k, s.Components[k]) != nil {
			continue // reported by checkMeasuredImages
		}
		for _, t := range s.TEE {
			// Evidence whose measurement is the policy's own (not an image's) meets the
			// components with nothing but spec.require behind them.
			ownMeasurement := len(pol.images) == 0 || slices.ContainsFunc(s.Measurements, func(m attest.Hex) bool { return !pol.imageMeasurement(t, m) })
			if miss := unpinned(t, k, byPolicy); len(miss) > 0 && ownMeasurement {
				c.errorf(p("spec", "components", k), "spec.components.%s: on %s it is drawn from %s, which the guest can extend after boot with events it labels as it likes: pin %s in spec.require too, or approve the image only by its signed reference values",
					k, t, strings.Join(miss, ", "), strings.Join(requireKeys(miss), ", "))
				continue
			}
			for _, is := range pol.images {
				for i := range is.set.Values {
					v := &is.set.Values[i]
					if v.TEE != t {
						continue
					}
					byImage := func(claim string) bool { _, ok := v.Registers[claim]; return byPolicy(claim) || ok }
					if miss := unpinned(t, k, byImage); len(miss) > 0 {
						c.errorf(p("spec", "components", k), "spec.components.%s: on %s it is drawn from %s, which %s (signed reference values of %s) does not pin: pin %s in spec.require too",
							k, t, strings.Join(miss, ", "), is.set.describe(), is.file, strings.Join(requireKeys(miss), ", "))
					}
				}
			}
		}
	}
}

// imageMeasurement reports whether m is the launch measurement of an image value for tee.
func (pol *Policy) imageMeasurement(tee attest.TEE, m attest.Hex) bool {
	for _, is := range pol.images {
		for _, v := range is.set.Values {
			if v.TEE == tee && bytes.Equal(v.Measurement, m) {
				return true
			}
		}
	}
	return false
}

// unpinned lists the measurement claims (pcrN, rtmrN) that component name is drawn from on tee
// and pinned does not cover. A TEE without those registers has no such component to pin.
func unpinned(tee attest.TEE, name string, pinned func(claim string) bool) []string {
	sc := schemes.ByTEE(tee)
	if sc == nil {
		return nil
	}
	var miss []string
	for _, cl := range eventlog.ComponentRegisters(name) {
		if _, ok := sc.Claims.Measurements[cl]; ok && !pinned(cl) {
			miss = append(miss, cl)
		}
	}
	return miss
}

// requireKeys names claims as the spec.require keys that pin them.
func requireKeys(claims []string) []string {
	out := make([]string, len(claims))
	for i, cl := range claims {
		if n, ok := strings.CutPrefix(cl, "pcr"); ok {
			out[i] = "pcrs." + n
		} else {
			out[i] = "measurements." + cl
		}
	}
	return out
}

// applySigned verifies a signed set for the policy and imports its launch measurements.
func (pol *Policy) applySigned(file string, raw []byte) error {
	msg, set, err := parseSignedSet(raw)
	if err != nil {
		return err
	}
	idx := slices.IndexFunc(pol.Spec.Images, func(im ImageTrust) bool { return im.ID == set.Image })
	if idx < 0 {
		return fmt.Errorf("signed reference values are for image %q, which spec.images does not list", set.Image)
	}
	im := &pol.Spec.Images[idx]
	if im.keys == nil {
		return errors.New("spec.images has no usable vendor key for this image")
	}
	kid, err := verifySet(msg, im.keys)
	if err != nil {
		return fmt.Errorf("image %s: %w", set.Image, err)
	}
	if err := set.ValidAt(timeNow()); err != nil {
		return err
	}
	if len(im.Versions) > 0 && !slices.Contains(im.Versions, set.Version) {
		return fmt.Errorf("version %s of %s is not one of spec.images versions %v", set.Version, set.Image, im.Versions)
	}
	n := 0
	for _, v := range set.Values {
		if !slices.Contains(pol.Spec.TEE, v.TEE) {
			continue
		}
		n++
		if !slices.ContainsFunc(pol.Spec.Measurements, func(m attest.Hex) bool { return bytes.Equal(m, v.Measurement) }) {
			pol.Spec.Measurements = append(pol.Spec.Measurements, v.Measurement)
		}
	}
	if n == 0 {
		return fmt.Errorf("signed reference values for %s %s have no values for %v", set.Image, set.Version, pol.Spec.TEE)
	}
	pol.images = append(pol.images, &imageSet{file: file, set: set, kid: kid})
	pol.imported = append(pol.imported, fmt.Sprintf("%s (%s, signed by %s)", file, set.describe(), kid))
	return nil
}

// checkMeasured runs the component and image checks of an evaluation (called from checks).
func (p *Policy) checkMeasured(c *attest.Claims, r *run) bool {
	for _, k := range sortedKeys(p.Spec.Components) {
		v, ok := c.Components[k]
		want := p.Spec.Components[k]
		if !r.check(ok && bytes.Equal(v, want), "components."+k, seenH(v, ok), want.String) {
			return false
		}
	}
	var first func() bool
	for _, is := range p.images {
		for i := range is.set.Values {
			v := &is.set.Values[i]
			if v.TEE != c.TEE || !bytes.Equal(v.Measurement, c.Measurement) {
				continue
			}
			claim, seen, want := mismatch(is.set, v, c)
			if claim == "" {
				return r.check(true, "image", str(is.set.describe()), str("signed reference values of "+is.file))
			}
			if first == nil {
				first = func() bool {
					return r.check(false, fmt.Sprintf("image %s %s: %s", is.set.Image, is.set.Version, claim), seen, want)
				}
			}
		}
	}
	if first != nil {
		return first()
	}
	return true // the measurement is pinned by the policy itself, not by an image
}

// mismatch returns the first check of v that the claims fail: validity, a register, a
// component; claim is "" when all pass.
func mismatch(s *ReferenceValueSet, v *ImageValues, c *attest.Claims) (claim string, seen, want func() string) {
	if err := s.ValidAt(timeNow()); err != nil {
		return "validity", str(err.Error()), str(fmt.Sprintf("%s to %s", s.NotBefore.UTC().Format(time.RFC3339), s.NotAfter.UTC().Format(time.RFC3339)))
	}
	for _, k := range sortedKeys(v.Registers) {
		got, ok := c.Measurements[k]
		if !ok || !bytes.Equal(got, v.Registers[k]) {
			return "measurements." + k, seenH(got, ok), v.Registers[k].String
		}
	}
	for _, k := range sortedKeys(v.Components) {
		got, ok := c.Components[k]
		if !ok || !bytes.Equal(got, v.Components[k]) {
			return "components." + k, func() string {
				if !ok {
					return "absent (no event log replayed with the evidence)"
				}
				return got.String()
			}, v.Components[k].String
		}
	}
	return "", nil, nil
}
