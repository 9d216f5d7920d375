package daemon

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/schemes"
	"github.com/medicus-cloud/trust/attest/snp"
)

// TestVerifiersConfig: a scheme is on only when its section is present, sections decode
// strictly into the scheme's type, `disabled: true` still turns one off (with a warning), and
// the simulated TEE follows --dev alone.
func TestVerifiersConfig(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		dev        bool
		want       []attest.TEE
		err        string // from LoadConfig, Validate or verifiers()
		warn       string
	}{
		{name: "sections present", yaml: "verifiers:\n  snp: {}\n  tdx:\n    offline: true\n  sgx:\n", want: []attest.TEE{attest.SEVSNP, attest.TDX, attest.SGX}},
		{name: "absent section is off", yaml: "verifiers:\n  snp:\n    offline: true\n", want: []attest.TEE{attest.SEVSNP}},
		{name: "deprecated disabled", yaml: "verifiers:\n  snp: {}\n  tdx: {disabled: true}\n", want: []attest.TEE{attest.SEVSNP}, warn: "verifiers.tdx.disabled is deprecated"},
		{name: "dev adds the simulator", yaml: "verifiers:\n  snp: {}\n", dev: true, want: []attest.TEE{attest.SEVSNP, attest.InsecureSimulated}},
		{name: "dev alone", yaml: "{}\n", dev: true, want: []attest.TEE{attest.InsecureSimulated}},
		{name: "nothing configured", yaml: "{}\n", err: "verifiers: no TEE verifier is configured"},
		{name: "all disabled", yaml: "verifiers:\n  snp: {disabled: true}\n", err: "verifiers: no TEE verifier is configured"},
		{name: "simulator outside dev", yaml: "verifiers:\n  snp: {}\n  sim: {}\n", err: "verifiers.sim: insecure-simulated evidence can be forged"},
		{name: "unknown key", yaml: "verifiers:\n  snp:\n    kds: x\n", err: "verifiers.snp: yaml: unmarshal errors"},
		{name: "key of another scheme", yaml: "verifiers:\n  snp:\n    pcs_url: x\n", err: "field pcs_url not found"},
		{name: "unknown scheme", yaml: "verifiers:\n  cca: {}\n", err: "verifiers.cca: no such TEE scheme (want " + strings.Join(schemes.Sections(), ", ") + ")"},
		{name: "not a mapping", yaml: "verifiers: [snp]\n", err: "verifiers: want a mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c, err := LoadConfig(write(t, dir, "c.yaml", tc.yaml))
			if err == nil {
				c.Dev, c.DataDir = tc.dev, filepath.Join(dir, "data")
				err = errors.Join(c.Verifiers.validate(c.Dev)...)
			}
			var vs []attest.Verifier
			var logs bytes.Buffer
			if err == nil {
				d := &Daemon{cfg: c, log: slog.New(slog.NewTextHandler(&logs, nil))}
				vs, err = d.verifiers()
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []attest.TEE
			for _, v := range vs {
				got = append(got, v.TEE())
			}
			if len(got) != len(tc.want) {
				t.Fatalf("verifiers %v, want %v", got, tc.want)
			}
			for _, w := range tc.want {
				found := false
				for _, g := range got {
					found = found || g == w
				}
				if !found {
					t.Fatalf("verifiers %v, want %v", got, tc.want)
				}
			}
			if !strings.Contains(logs.String(), tc.warn) {
				t.Errorf("log %q, want %q", logs.String(), tc.warn)
			}
		})
	}
}

// The configuration types are the schemes' own, and defaults come from the data directory.
func TestVerifiersTyped(t *testing.T) {
	c, err := LoadConfig(write(t, t.TempDir(), "c.yaml", "verifiers:\n  snp:\n    certs_dir: /etc/snp\n"))
	if err != nil {
		t.Fatal(err)
	}
	if sc, ok := c.Verifiers["snp"].(*snp.Config); !ok || sc.CertsDir != "/etc/snp" {
		t.Fatalf("verifiers.snp = %#v", c.Verifiers["snp"])
	}
}
