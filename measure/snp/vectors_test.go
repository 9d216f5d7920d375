package snp

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"testing"
)

// upstreamVector is a launch digest that an upstream tool publishes for inputs given as text: a
// precomputed OVMF hash (mode snp:ovmf-hash) and the OVMF metadata (sections and AP reset
// address). testdata/README.md names where each comes from.
type upstreamVector struct {
	Name          string `json:"name"`
	Source        string `json:"source"`
	VMM           string `json:"vmm"`
	VCPUs         int    `json:"vcpus"`
	VCPUSig       string `json:"vcpu_sig"`
	GuestFeatures string `json:"guest_features"`
	LegacyEC2RDX  bool   `json:"legacy_ec2_rdx"`
	OVMFHash      string `json:"ovmf_hash"`
	ResetEIP      string `json:"reset_eip"`
	Sections      []struct {
		GPA  string `json:"gpa"`
		Size string `json:"size"`
		Type uint32 `json:"type"`
	} `json:"sections"`
	Measurement string `json:"measurement"`
}

func num(t *testing.T, field, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		t.Fatalf("%s: %v", field, err)
	}
	return v
}

// TestUpstreamVectors reproduces published launch digests. The firmware is a synthetic image
// that carries the vector's metadata in its footer table, so the OVMF parser is on the path too;
// its page contents do not matter because the OVMF hash is given.
func TestUpstreamVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/upstream-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []upstreamVector
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			im := image{pages: 4, resetEIP: uint32(num(t, "reset_eip", v.ResetEIP))}
			for _, s := range v.Sections {
				im.sections = append(im.sections, Section{
					GPA:  uint32(num(t, "gpa", s.GPA)),
					Size: uint32(num(t, "size", s.Size)),
					Type: SectionType(s.Type),
				})
			}
			fw := mustParse(t, im)
			vmm, err := ParseVMMType(v.VMM)
			if err != nil {
				t.Fatal(err)
			}
			oh, err := hex.DecodeString(v.OVMFHash)
			if err != nil {
				t.Fatal(err)
			}
			got, err := LaunchDigest(fw, Params{
				VCPUs:         v.VCPUs,
				VCPUSig:       uint32(num(t, "vcpu_sig", v.VCPUSig)),
				GuestFeatures: num(t, "guest_features", v.GuestFeatures),
				VMM:           vmm,
				OVMFHash:      oh,
				legacyEC2RDX:  v.LegacyEC2RDX,
			})
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got[:]) != v.Measurement {
				t.Errorf("measurement %x, want %s (%s)", got, v.Measurement, v.Source)
			}
		})
	}
}
