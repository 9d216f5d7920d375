package policies

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest"
)

// TestRequirePCRs: spec.require.pcrs pins vTPM PCRs by index; an index no TEE quotes and a value
// that is not a SHA-256 digest are refused when the bundle is parsed, and a denial names the PCR.
func TestRequirePCRs(t *testing.T) {
	m := strings.Repeat("ab", 48)
	doc := func(pcrs string) map[string][]byte {
		return map[string][]byte{"a.yaml": []byte(`
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: a}
spec:
  tee: [azure-tdx]
  measurements: ["` + m + `"]
  require:
    tcbStatus: [unknown]
    allowSeptVE: true
    pcrs: ` + pcrs + `
`)}
	}
	for pcrs, want := range map[string]string{
		`{24: "` + strings.Repeat("00", 32) + `"}`: "no TEE type quotes PCR 24",
		`{7: "` + strings.Repeat("00", 48) + `"}`:  "spec.require.pcrs.7 is 48 bytes, want 32",
		`{x: "00"}`: "a.yaml:11: cannot unmarshal",
	} {
		if _, err := Parse(doc(pcrs)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("pcrs %s: %v, want %q", pcrs, err, want)
		}
	}
	b, err := Parse(doc(`{7: "` + strings.Repeat("07", 32) + `", 11: "` + strings.Repeat("00", 32) + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	// azure-tdx claims are a TD's (schemes.Hardware): the TD-attribute defaults apply.
	c := &attest.Claims{TEE: "azure-tdx", Measurement: mustHex(m), Attributes: map[string]uint64{"td_attributes": 1 << 28}, TCBStatus: "unknown", Measurements: map[string]attest.Hex{
		attest.PCRClaim(7): mustHex(strings.Repeat("07", 32)), attest.PCRClaim(11): mustHex(strings.Repeat("11", 32))}}
	_, err = b.Evaluate(c)
	var d *Denial
	if !errors.As(err, &d) || d.Claim != "pcrs.11" {
		t.Fatalf("got %v, want a denial naming pcrs.11", err)
	}
	c.Measurements[attest.PCRClaim(11)] = mustHex(strings.Repeat("00", 32))
	if _, err := b.Evaluate(c); err != nil {
		t.Fatalf("matching PCRs: %v", err)
	}
}

func mustHex(s string) attest.Hex {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
