package policies

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/veraison/corim/comid"
	"github.com/veraison/corim/corim"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/schemes"
)

// CoRIM interoperability (draft-ietf-rats-corim) for reference-value sets, with
// github.com/veraison/corim. A set maps onto an unsigned CoRIM with one CoMID:
//
//   - corim-id "IMAGE@VERSION", the set's validity as the RIM validity, profile CoRIMProfile;
//   - one reference-value triple per value: environment class vendor = the image ID, model = the
//     TEE type; one measurement whose version is "VERSION+COMMIT" (semver build metadata) and
//     whose integrity registers are "measurement" (the launch measurement), the registers
//     (rtmr0..rtmr3) and the components (kernel, initrd, cmdline ...), each one digest with
//     its algorithm (sha-384 for 48 bytes, sha-256 for 32).
//
// The CoRIM is unsigned: trust still comes from the vendor's COSE_Sign1 over the set. Export
// lets CoRIM-consuming verifiers (Veraison) read the same values; import turns a CoRIM that a
// pipeline produced in this shape back into a set to check and sign.

// CoRIMProfile identifies the mapping above.
const CoRIMProfile = "https://medicus.cloud/trust/corim/refvalues/v1"

// ExportCoRIM encodes the set as an unsigned CoRIM (CBOR).
func ExportCoRIM(s *ReferenceValueSet) ([]byte, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	id := sha256.Sum256([]byte(s.Image + "@" + s.Version))
	u := id[:16]
	u[6], u[8] = u[6]&0x0f|0x50, u[8]&0x3f|0x80 // a name-based UUID (version 5 layout)
	type reg struct {
		KeyType string   `json:"key-type"`
		Value   []string `json:"value"`
	}
	var triples []any
	for _, v := range s.Values {
		regs := map[string]reg{}
		add := func(name string, d []byte) {
			alg := "sha-384"
			if len(d) == 32 {
				alg = "sha-256"
			}
			regs[name] = reg{"text", []string{alg + ";" + base64.StdEncoding.EncodeToString(d)}}
		}
		add("measurement", v.Measurement)
		for k, d := range v.Registers {
			add(k, d)
		}
		for k, d := range v.Components {
			add(k, d)
		}
		triples = append(triples, map[string]any{
			"environment": map[string]any{"class": map[string]any{"vendor": s.Image, "model": string(v.TEE)}},
			"measurements": []any{map[string]any{"value": map[string]any{
				"version":             map[string]any{"value": s.Version + "+" + s.SourceCommit, "scheme": "semver"},
				"integrity-registers": regs,
			}}},
		})
	}
	doc := map[string]any{
		"tag-identity": map[string]any{"id": uuidString(u), "version": 0},
		"entities":     []any{map[string]any{"name": s.Image, "roles": []string{"tagCreator", "creator"}}},
		"triples":      map[string]any{"reference-values": triples},
	}
	j, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	var c comid.Comid
	if err := c.FromJSON(j); err != nil {
		return nil, fmt.Errorf("corim: %w", err)
	}
	if err := c.Valid(); err != nil {
		return nil, fmt.Errorf("corim: %w", err)
	}
	uc := corim.NewUnsignedCorim().SetID(s.Image + "@" + s.Version)
	if uc = uc.AddComid(c); uc == nil {
		return nil, errors.New("corim: the CoMID does not encode")
	}
	nb := s.NotBefore
	if uc = uc.SetRimValidity(s.NotAfter, &nb).AddProfile(CoRIMProfile); uc == nil {
		return nil, errors.New("corim: validity or profile does not encode")
	}
	if err := uc.Valid(); err != nil {
		return nil, fmt.Errorf("corim: %w", err)
	}
	return uc.ToCBOR()
}

// ImportCoRIM decodes an unsigned CoRIM in the shape ExportCoRIM writes into a set, checked but
// not signed: sign it (SignReferenceValues) to make it something a policy can trust.
func ImportCoRIM(data []byte) (s *ReferenceValueSet, err error) {
	// veraison/corim v1.1.2 panics on some malformed CBOR (an empty map, for one): outside
	// input must give an error, never a crash.
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("corim: malformed CBOR (%v)", r)
		}
	}()
	if len(data) > MaxDocumentSize {
		return nil, fmt.Errorf("corim: larger than %d bytes", MaxDocumentSize)
	}
	var uc corim.UnsignedCorim
	if err := uc.FromCBOR(data); err != nil {
		return nil, fmt.Errorf("corim: %w", err)
	}
	if uc.RimValidity == nil || uc.RimValidity.NotBefore == nil {
		return nil, errors.New("corim: validity with notBefore and notAfter is required")
	}
	s = &ReferenceValueSet{APIVersion: APIVersion, Kind: ReferenceValueSetKind,
		NotBefore: *uc.RimValidity.NotBefore, NotAfter: uc.RimValidity.NotAfter}
	if len(uc.Tags) != 1 || !slices.Equal([]byte(uc.Tags[0][:3]), corim.ComidTag) {
		return nil, errors.New("corim: want exactly one CoMID tag")
	}
	var c comid.Comid
	if err := c.FromCBOR(uc.Tags[0][3:]); err != nil {
		return nil, fmt.Errorf("corim: CoMID: %w", err)
	}
	j, err := c.ToJSON()
	if err != nil {
		return nil, fmt.Errorf("corim: CoMID: %w", err)
	}
	var doc struct {
		Triples struct {
			RefVals []struct {
				Environment struct {
					Class struct {
						Vendor string `json:"vendor"`
						Model  string `json:"model"`
					} `json:"class"`
				} `json:"environment"`
				Measurements []struct {
					Value struct {
						Version struct {
							Value string `json:"value"`
						} `json:"version"`
						Registers map[string]struct {
							Value []string `json:"value"`
						} `json:"integrity-registers"`
					} `json:"value"`
				} `json:"measurements"`
			} `json:"reference-values"`
		} `json:"triples"`
	}
	if err := json.Unmarshal(j, &doc); err != nil {
		return nil, fmt.Errorf("corim: CoMID: %w", err)
	}
	for i, rv := range doc.Triples.RefVals {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("corim: reference value %d: "+format, append([]any{i}, args...)...)
		}
		if len(rv.Measurements) != 1 {
			return nil, bad("want one measurement, got %d", len(rv.Measurements))
		}
		m := rv.Measurements[0].Value
		ver, commit, ok := cutLast(m.Version.Value, "+")
		if !ok {
			return nil, bad("version %q is not VERSION+COMMIT", m.Version.Value)
		}
		if i == 0 {
			s.Image, s.Version, s.SourceCommit = rv.Environment.Class.Vendor, ver, commit
		} else if s.Image != rv.Environment.Class.Vendor || s.Version != ver || s.SourceCommit != commit {
			return nil, bad("names another image, version or commit than the first")
		}
		tee, err := schemes.ParseTEE(rv.Environment.Class.Model)
		if err != nil {
			return nil, bad("class model: %v", err)
		}
		v := ImageValues{TEE: tee}
		for name, r := range m.Registers {
			if len(r.Value) != 1 {
				return nil, bad("register %s: want one digest", name)
			}
			alg, b64, _ := strings.Cut(r.Value[0], ";")
			d, err := base64.StdEncoding.DecodeString(b64)
			if err != nil || (alg == "sha-384") != (len(d) == 48) || (alg == "sha-256") != (len(d) == 32) {
				return nil, bad("register %s: %q is not a sha-256 or sha-384 digest", name, r.Value[0])
			}
			switch {
			case name == "measurement":
				v.Measurement = d
			case strings.HasPrefix(name, "rtmr") || knownMeasurements[name] > 0:
				if v.Registers == nil {
					v.Registers = map[string]attest.Hex{}
				}
				v.Registers[name] = d
			default:
				if v.Components == nil {
					v.Components = map[string]attest.Hex{}
				}
				v.Components[name] = d
			}
		}
		s.Values = append(s.Values, v)
	}
	if err := s.Check(); err != nil {
		return nil, fmt.Errorf("corim: %w", err)
	}
	return s, nil
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

func uuidString(u []byte) string {
	h := hex.EncodeToString(u)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
