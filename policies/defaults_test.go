package policies

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest"
)

// Secure defaults (issue 14, items 6, 7 and 12): what a policy no longer has to say, and the
// explicit keys that loosen it.

func policyDoc(tee, meas, require string) string {
	return "apiVersion: trust.medicus.cloud/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  tee: [" + tee + "]\n  measurements: [" + meas + "]\n" +
		"  require: {" + require + "}\n  grants: {secrets: [p/s]}\n"
}

func denialClaim(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var d *Denial
	if !errors.As(err, &d) {
		t.Fatalf("not a denial: %v", err)
	}
	return d.Claim
}

func TestDefaults(t *testing.T) {
	snpM, tdxM := strings.Repeat("ab", 48), strings.Repeat("cd", 48)
	snp := func(mut func(*attest.Claims)) func() *attest.Claims {
		return func() *attest.Claims {
			c := &attest.Claims{TEE: attest.SEVSNP, Measurement: bytes.Repeat([]byte{0xab}, 48),
				Attributes: map[string]uint64{"vmpl": 0}, PolicySMTAllowed: new(false), PlatformSMTEnabled: attest.TriFalse}
			if mut != nil {
				mut(c)
			}
			return c
		}
	}
	tdx := func(td uint64, smt attest.Tristate) func() *attest.Claims {
		return func() *attest.Claims {
			return &attest.Claims{TEE: attest.TDX, Measurement: bytes.Repeat([]byte{0xcd}, 48), TCBStatus: "UpToDate",
				Attributes: map[string]uint64{"td_attributes": td}, PlatformSMTEnabled: smt}
		}
	}
	const septVE = 1 << 28
	tests := []struct {
		name    string
		require string
		tee     string
		claims  func() *attest.Claims
		denied  string // "" when allowed
	}{
		// Item 7: VMPL 0 unless the policy names another level.
		{"snp vmpl 0 by default", "", "sev-snp", snp(nil), ""},
		{"snp vmpl 1 denied by default", "", "sev-snp", snp(func(c *attest.Claims) { c.Attributes["vmpl"] = 1 }), "attributes.vmpl"},
		{"snp vmpl 3 denied by default", "", "sev-snp", snp(func(c *attest.Claims) { c.Attributes["vmpl"] = 3 }), "attributes.vmpl"},
		{"snp vmpl absent denied", "", "sev-snp", snp(func(c *attest.Claims) { c.Attributes = nil }), "attributes.vmpl"},
		{"snp vmpl 2 where the policy names it", "vmpl: 2", "sev-snp", snp(func(c *attest.Claims) { c.Attributes["vmpl"] = 2 }), ""},
		{"snp vmpl 0 where the policy names 2", "vmpl: 2", "sev-snp", snp(nil), "attributes.vmpl"},
		// Item 6: unknown SMT never satisfies platformSMTEnabled: false.
		{"tdx smt off", "platformSMTEnabled: false", "tdx", tdx(septVE, attest.TriFalse), ""},
		{"tdx smt unknown is not off", "platformSMTEnabled: false", "tdx", tdx(septVE, attest.TriUnknown), "platform_smt_enabled"},
		{"tdx smt empty is not off", "platformSMTEnabled: false", "tdx", tdx(septVE, ""), "platform_smt_enabled"},
		{"tdx smt unknown is not on", "platformSMTEnabled: true", "tdx", tdx(septVE, attest.TriUnknown), "platform_smt_enabled"},
		{"tdx smt on denied", "platformSMTEnabled: false", "tdx", tdx(septVE, attest.TriTrue), "platform_smt_enabled"},
		// Item 12: SNP's two SMT claims are different facts.
		{"snp guest policy allows smt", "policySMTAllowed: false", "sev-snp", snp(func(c *attest.Claims) { c.PolicySMTAllowed = new(true) }), "policy_smt_allowed"},
		{"snp platform smt on, guest policy forbids", "policySMTAllowed: false", "sev-snp", snp(func(c *attest.Claims) { c.PlatformSMTEnabled = attest.TriTrue }), ""},
		{"snp platform smt on denied", "platformSMTEnabled: false", "sev-snp", snp(func(c *attest.Claims) { c.PlatformSMTEnabled = attest.TriTrue }), "platform_smt_enabled"},
		{"tdx has no guest smt policy", "policySMTAllowed: false", "tdx", tdx(septVE, attest.TriFalse), "policy_smt_allowed"},
		// Item 12: TDX SEPT_VE_DISABLE and TUD bits 1-7.
		{"tdx sept_ve_disable required", "", "tdx", tdx(0, attest.TriFalse), "attributes.td_attributes.sept_ve_disable"},
		{"tdx sept_ve allowed explicitly", "allowSeptVE: true", "tdx", tdx(0, attest.TriFalse), ""},
		{"tdx td_attributes absent", "", "tdx", func() *attest.Claims { c := tdx(0, attest.TriFalse)(); c.Attributes = nil; return c }, "attributes.td_attributes.sept_ve_disable"},
		{"tdx tud bit 1", "", "tdx", tdx(septVE|1<<1, attest.TriFalse), "attributes.td_attributes.tud"},
		{"tdx tud bit 7", "", "tdx", tdx(septVE|1<<7, attest.TriFalse), "attributes.td_attributes.tud"},
		{"tdx tud bits allowed explicitly", "allowTUDDebugBits: true", "tdx", tdx(septVE|1<<7, attest.TriFalse), ""},
		{"tdx bit 8 is not tud", "", "tdx", tdx(septVE|1<<8, attest.TriFalse), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := snpM
			if tc.tee == "tdx" {
				m = tdxM
			}
			b := mustParse(t, policyDoc(tc.tee, m, tc.require))
			_, err := b.Evaluate(tc.claims())
			if got := denialClaim(t, err); got != tc.denied {
				t.Fatalf("denied on %q (%v), want %q", got, err, tc.denied)
			}
		})
	}
}

func TestDefaultsLint(t *testing.T) {
	snpM := strings.Repeat("ab", 48)
	idKey := strings.Repeat("11", 48)
	tests := []struct {
		name, doc, want string // want "" parses
	}{
		{"old smt key", policyDoc("sev-snp", snpM, "smt: false"), "spec.require.smt was removed"},
		{"family_id without id_key_digest", policyDoc("sev-snp", snpM, `config: {family_id: "`+strings.Repeat("01", 16)+`"}`), "needs a pinned, non-zero id_key_digest"},
		{"image_id with zero id_key_digest", policyDoc("sev-snp", snpM, `config: {image_id: "`+strings.Repeat("01", 16)+`", id_key_digest: "`+strings.Repeat("00", 48)+`"}`), "needs a pinned, non-zero id_key_digest"},
		{"image_id and family_id with id_key_digest", policyDoc("sev-snp", snpM, `config: {image_id: "`+strings.Repeat("01", 16)+`", family_id: "`+strings.Repeat("02", 16)+`", id_key_digest: "`+idKey+`"}`), ""},
		{"committed and launch tcb", policyDoc("sev-snp", snpM, "minTCB: {committed.snp: 22, launch.microcode: 200}"), ""},
		{"mrsignerseam and mrservicetd", policyDoc("tdx", snpM, `measurements: {mrsignerseam: "`+strings.Repeat("00", 48)+`", mrservicetd: "`+strings.Repeat("00", 48)+`"}`), ""},
		{"sgx config ids", "apiVersion: trust.medicus.cloud/v1\nkind: ImagePolicy\nmetadata: {name: e}\nspec:\n  tee: [sgx]\n  measurements: [" + strings.Repeat("99", 32) + "]\n" +
			`  require: {config: {config_id: "` + strings.Repeat("00", 64) + `", isv_family_id: "` + strings.Repeat("01", 16) + `", isv_ext_prod_id: "` + strings.Repeat("02", 16) + `"}}` + "\n", ""},
		{"sgx config_id wrong length", policyDoc("sgx", strings.Repeat("99", 32), `config: {config_id: "00"}`), "config_id is 1 bytes, want 64"},
		{"sgxSigner without productID", "apiVersion: trust.medicus.cloud/v1\nkind: ImagePolicy\nmetadata: {name: e}\nspec:\n  tee: [sgx]\n  sgxSigner: {mrsigner: " + strings.Repeat("55", 32) + ", minSVN: 1}\n", "productID is required"},
		{"sgxSigner without minSVN", "apiVersion: trust.medicus.cloud/v1\nkind: ImagePolicy\nmetadata: {name: e}\nspec:\n  tee: [sgx]\n  sgxSigner: {mrsigner: " + strings.Repeat("55", 32) + ", productID: 0}\n", "minSVN is required"},
		{"sgxSigner with explicit zeros", "apiVersion: trust.medicus.cloud/v1\nkind: ImagePolicy\nmetadata: {name: e}\nspec:\n  tee: [sgx]\n  sgxSigner: {mrsigner: " + strings.Repeat("55", 32) + ", productID: 0, minSVN: 0}\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(map[string][]byte{"p.yaml": []byte(tc.doc)})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// A signer policy built in Go without ProductID or MinSVN matches nothing rather than product 0
// or every SVN.
func TestSGXSignerUnsetMatchesNothing(t *testing.T) {
	b := mustParse(t, sgxPolicy)
	b.Policies[0].Spec.SGXSigner.ProductID = nil
	c := goodSGX()
	c.Attributes["isv_prod_id"] = 0
	if got := denialClaim(t, func() error { _, err := b.Evaluate(c); return err }()); got != "attributes.isv_prod_id" {
		t.Fatalf("denied on %q, want attributes.isv_prod_id", got)
	}
}
