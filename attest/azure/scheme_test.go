package azure_test

import (
	"bytes"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure"
	"github.com/medicus-cloud/trust/attest/snp"
	"github.com/medicus-cloud/trust/attest/tdx"
)

// TestSchemeConfig: the azure-snp and azure-tdx sections take the snp and tdx options (strictly)
// and build Azure verifiers around the SEV-SNP and TDX verifiers those options configure.
func TestSchemeConfig(t *testing.T) {
	tests := []struct {
		s      *attest.Scheme
		inner  *attest.Scheme
		config string
	}{
		{&azure.SNPScheme, &snp.Scheme, "offline: true\ncache_dir: " + t.TempDir()},
		{&azure.TDXScheme, &tdx.Scheme, "offline: true\ncache_dir: " + t.TempDir()},
	}
	for _, tc := range tests {
		t.Run(string(tc.s.TEE), func(t *testing.T) {
			c := tc.s.NewConfig()
			d := yaml.NewDecoder(bytes.NewReader([]byte(tc.config)))
			d.KnownFields(true)
			if err := d.Decode(c); err != nil {
				t.Fatal(err)
			}
			v, err := c.NewVerifier(attest.Deps{DataDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if v.TEE() != tc.s.TEE || tc.s.Hardware != tc.inner.TEE {
				t.Errorf("verifier of %s, hardware %s", v.TEE(), tc.s.Hardware)
			}
			if _, ok := v.(attest.BindingChecker); !ok {
				t.Error("the verifier does not say how its evidence carries the binding")
			}
			for k, n := range tc.inner.Claims.Measurements {
				if tc.s.Claims.Measurements[k] != n {
					t.Errorf("measurement claim %s missing", k)
				}
			}
			if tc.s.Claims.Measurements[attest.PCRClaim(23)] != 32 || tc.s.Claims.Config[azure.ClaimAKDigest] != 32 {
				t.Errorf("claims %v", tc.s.Claims)
			}
		})
	}
}
