package schemes_test

import (
	"bytes"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/schemes"
	"github.com/medicus-cloud/trust/internal/wire"
)

// TestProtoEnum: every scheme has its value of the proto TEE enum, by the naming rule that
// internal/wire maps with, and every value of the enum has a scheme.
func TestProtoEnum(t *testing.T) {
	seen := map[pb.TEE]bool{}
	for _, s := range schemes.All {
		p := wire.TEEToPB(s.TEE)
		if p == pb.TEE_TEE_UNSPECIFIED {
			t.Errorf("%s: no value of the proto TEE enum (want TEE_%s)", s.TEE, strings.ReplaceAll(strings.ToUpper(string(s.TEE)), "-", "_"))
			continue
		}
		back, err := wire.TEE(p)
		if err != nil || back != s.TEE {
			t.Errorf("%s -> %v -> %q, %v", s.TEE, p, back, err)
		}
		seen[p] = true
	}
	for v, name := range pb.TEE_name {
		if p := pb.TEE(v); p != pb.TEE_TEE_UNSPECIFIED && !seen[p] {
			t.Errorf("proto enum value %s has no scheme in schemes.All", name)
		}
	}
	if _, err := wire.TEE(pb.TEE_TEE_UNSPECIFIED); err == nil {
		t.Error("TEE_UNSPECIFIED converted")
	}
	if _, err := wire.TEE(pb.TEE(99)); err == nil {
		t.Error("unknown enum value converted")
	}
}

// TestSchemes checks what every scheme must declare.
func TestSchemes(t *testing.T) {
	tees, sections, spellings := map[attest.TEE]bool{}, map[string]bool{}, map[string]bool{}
	for _, s := range schemes.All {
		if s.TEE == "" || string(s.TEE) != strings.ToLower(string(s.TEE)) {
			t.Errorf("%q: TEE name must be lower case and not empty", s.TEE)
		}
		if tees[s.TEE] {
			t.Errorf("%s listed twice", s.TEE)
		}
		tees[s.TEE] = true
		if s.Section == "" || sections[s.Section] {
			t.Errorf("%s: section %q empty or taken", s.TEE, s.Section)
		}
		sections[s.Section] = true
		for _, n := range append([]string{string(s.TEE)}, s.Aliases...) {
			if spellings[n] {
				t.Errorf("%s: spelling %q taken", s.TEE, n)
			}
			spellings[n] = true
			if got, err := schemes.ParseTEE(" " + strings.ToUpper(n) + " "); err != nil || got != s.TEE {
				t.Errorf("ParseTEE(%q) = %q, %v", n, got, err)
			}
		}
		if s.Measurement.Size <= 0 || s.Measurement.Register == "" {
			t.Errorf("%s: no measurement rule", s.TEE)
		}
		if s.NewConfig == nil {
			t.Fatalf("%s: no NewConfig", s.TEE)
		}
		// An empty section decodes strictly, and unknown keys are refused.
		if err := strictDecode("{}", s.NewConfig()); err != nil {
			t.Errorf("%s: empty section: %v", s.TEE, err)
		}
		if err := strictDecode("no_such_key: 1", s.NewConfig()); err == nil {
			t.Errorf("%s: unknown key accepted", s.TEE)
		}
		if s.DevOnly == (s.File != nil) {
			t.Errorf("%s: a scheme has an offline file verifier exactly when it is not dev-only", s.TEE)
		}
	}
	if _, err := schemes.ParseTEE("arm-cca"); err == nil || !strings.Contains(err.Error(), "sev-snp, tdx, sgx, insecure-simulated") || !strings.Contains(err.Error(), " or "+schemes.Names()[len(schemes.All)-1]+")") {
		t.Errorf("ParseTEE(arm-cca): %v", err)
	}
}

func strictDecode(src string, v any) error {
	d := yaml.NewDecoder(bytes.NewReader([]byte(src)))
	d.KnownFields(true)
	return d.Decode(v)
}
