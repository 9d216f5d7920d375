package policies

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest"
)

func helloMeasurement() attest.Hex {
	m := make([]byte, 48)
	copy(m, "medicus trust example hello image v1")
	return m
}

func TestExamples(t *testing.T) {
	b, err := Load("examples")
	if err != nil {
		t.Fatal(err)
	}
	d, err := b.Evaluate(&attest.Claims{TEE: attest.InsecureSimulated, Measurement: helloMeasurement(), TCB: map[string]uint64{"guest_svn": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Policy != "hello" || len(d.Grants) != 2 || !bytes.Equal(d.Digest, b.Digest) {
		t.Fatalf("decision %+v", d)
	}
}

func TestEvaluateDenials(t *testing.T) {
	b, err := Parse(map[string][]byte{"p.yaml": []byte(`
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: img}
spec:
  tee: [sev-snp]
  measurements: ["` + strings.Repeat("ab", 48) + `"]
  require:
    smt: false
    minTCB: {snp: 22, microcode: 213}
    config: {host_data: "` + strings.Repeat("01", 32) + `"}
  grants: {dataKeys: [t/records]}
`)})
	if err != nil {
		t.Fatal(err)
	}
	good := func() *attest.Claims {
		return &attest.Claims{TEE: attest.SEVSNP, Measurement: bytes.Repeat([]byte{0xab}, 48),
			TCB:    map[string]uint64{"snp": 22, "microcode": 220},
			Config: map[string]attest.Hex{"host_data": bytes.Repeat([]byte{1}, 32)}}
	}
	tests := []struct {
		name   string
		mutate func(c *attest.Claims)
		claim  string
	}{
		{"ok", func(*attest.Claims) {}, ""},
		{"other measurement", func(c *attest.Claims) { c.Measurement[0] = 0 }, "measurement"},
		{"other tee", func(c *attest.Claims) { c.TEE = attest.TDX }, "measurement"},
		{"debug", func(c *attest.Claims) { c.Debug = true }, "debug"},
		{"migration", func(c *attest.Claims) { c.Migration = true }, "migration"},
		{"smt", func(c *attest.Claims) { c.SMT = true }, "smt"},
		{"low snp tcb", func(c *attest.Claims) { c.TCB["snp"] = 21 }, "tcb.snp"},
		{"absent microcode", func(c *attest.Claims) { delete(c.TCB, "microcode") }, "tcb.microcode"},
		{"host data", func(c *attest.Claims) { c.Config["host_data"] = []byte{2} }, "config.host_data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.mutate(c)
			_, err := b.Evaluate(c)
			var d *Denial
			if tc.claim == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.As(err, &d) || d.Claim != tc.claim {
				t.Fatalf("got %v, want denial of %s", err, tc.claim)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	base := "apiVersion: trust.medicus.cloud/v1\nkind: ImagePolicy\nmetadata: {name: x}\n"
	m := `["` + strings.Repeat("ab", 48) + `"]`
	tests := []struct{ name, src, want string }{
		{"unknown field", base + "spec: {tee: [tdx], measurements: " + m + ", colour: red}\n", `p.yaml:4:136: unknown field "colour"`},
		{"wrong type", base + "spec: {tee: tdx, measurements: " + m + "}\n", "p.yaml:4:13: want a list"},
		{"bad yaml", base + "spec: [\n", "p.yaml"},
		{"bad tee", base + "spec: {tee: [sev], measurements: " + m + "}\n", "unknown TEE type"},
		{"no measurements", base + "spec: {tee: [tdx]}\n", "spec.measurements is empty"},
		{"bad hex", base + "spec: {tee: [tdx], measurements: [zz]}\n", "not hex"},
		{"bad grant", base + "spec: {tee: [tdx], measurements: " + m + ", grants: {secrets: [../x]}}\n", "spec.grants.secrets[0]"},
		{"wrong version", "apiVersion: v0\nkind: ImagePolicy\n", "apiVersion"},
		{"empty", "", "no policy documents"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(map[string][]byte{"p.yaml": []byte(tc.src)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	src, _ := readBounded("examples/hello.yaml")
	f.Add(src)
	f.Add([]byte("apiVersion: x\n---\nkind: y"))
	f.Fuzz(func(t *testing.T, b []byte) {
		bundle, err := Parse(map[string][]byte{"f.yaml": b})
		if err == nil {
			_, _ = bundle.Evaluate(&attest.Claims{TEE: attest.SEVSNP})
		}
	})
}
