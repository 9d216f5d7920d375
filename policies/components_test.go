package policies

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/internal/keyfile"
)

const rvDir = "testdata/refvalues"

func rvFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rvDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// imageBundle is the messenger-image policy importing the named signed set (under the name the
// policy uses), with extra YAML appended to its spec.
func imageBundle(t *testing.T, set, extra string) (map[string][]byte, error) {
	t.Helper()
	y := string(rvFile(t, "messenger-image.yaml")) + extra
	files := map[string][]byte{"messenger-image.yaml": []byte(y), "messenger-1.9.0.refs.cose": rvFile(t, set)}
	_, err := Parse(files)
	return files, err
}

// TestSignedReferenceValues: a policy approves an image by ID through a vendor-signed set; the
// decision names the image, version and commit; a component that differs is named with the
// digest seen and the one expected.
func TestSignedReferenceValues(t *testing.T) {
	b, err := Load(filepath.Join(rvDir, "messenger-image.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ReadClaims(filepath.Join(rvDir, "messenger-claims.json"))
	if err != nil {
		t.Fatal(err)
	}
	trace, d, err := b.Explain(c)
	if err != nil {
		t.Fatal(err)
	}
	if d.Policy != "messenger-image" {
		t.Fatalf("decided by %q", d.Policy)
	}
	var matched bool
	for _, ch := range trace {
		if ch.Claim == "image" && ch.Pass && ch.Seen == "registry.medicus.cloud/messenger 1.9.0 (commit 4f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39)" {
			matched = true
		}
	}
	if !matched {
		t.Errorf("trace does not name the image that matched: %+v", trace)
	}

	other, err := ReadClaims(filepath.Join(rvDir, "messenger-other-kernel-claims.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Evaluate(other)
	var den *Denial
	if !errors.As(err, &den) || den.Claim != "image registry.medicus.cloud/messenger 1.9.0: components.kernel" ||
		!strings.HasPrefix(den.Seen, "c101") || !strings.HasPrefix(den.Expected, "b101") {
		t.Fatalf("other kernel: %v", err)
	}

	noLog := *c
	noLog.Components = nil
	_, err = b.Evaluate(&noLog)
	if !errors.As(err, &den) || !strings.Contains(den.Claim, "components.cmdline") || !strings.Contains(den.Seen, "absent") {
		t.Fatalf("no event log: %v", err)
	}

	changed := *c
	changed.Measurements = map[string]attest.Hex{}
	for k, v := range c.Measurements {
		changed.Measurements[k] = v
	}
	changed.Measurements["rtmr1"] = bytes.Repeat([]byte{1}, 48)
	_, err = b.Evaluate(&changed)
	if !errors.As(err, &den) || den.Claim != "image registry.medicus.cloud/messenger 1.9.0: measurements.rtmr1" {
		t.Fatalf("other rtmr1: %v", err)
	}

	// The set expires while the bundle is loaded: evaluation denies, naming the validity.
	defer func(f func() time.Time) { timeNow = f }(timeNow)
	timeNow = func() time.Time { return time.Date(2037, 1, 1, 0, 0, 0, 0, time.UTC) }
	_, err = b.Evaluate(c)
	if !errors.As(err, &den) || !strings.HasSuffix(den.Claim, ": validity") || !strings.Contains(den.Seen, "expired") {
		t.Fatalf("expired at evaluation: %v", err)
	}
}

// TestSpecComponents: a policy pins a component directly.
func TestSpecComponents(t *testing.T) {
	files, err := imageBundle(t, "messenger-1.9.0.refs.cose", "  components:\n    cmdline: "+strings.Repeat("ab", 48)+"\n")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse(files)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ReadClaims(filepath.Join(rvDir, "messenger-claims.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Evaluate(c)
	var den *Denial
	if !errors.As(err, &den) || den.Claim != "components.cmdline" || !strings.HasPrefix(den.Seen, "129cc599") || den.Expected != strings.Repeat("ab", 48) {
		t.Fatalf("%v", err)
	}
	if _, err := imageBundle(t, "messenger-1.9.0.refs.cose", "  components:\n    bootrom: "+strings.Repeat("ab", 48)+"\n"); err == nil || !strings.Contains(err.Error(), "unknown component") {
		t.Fatalf("unknown component: %v", err)
	}
}

// TestSignedReferenceValuesRefused: the bundle does not load with a set whose signature is
// bad, that expired, or that another vendor signed, nor with a set for an image spec.images
// does not list or a version it does not accept.
func TestSignedReferenceValuesRefused(t *testing.T) {
	for _, tc := range []struct {
		name, set, want string
		edit            func(string) string
	}{
		{name: "bad signature", set: "messenger-1.9.0-bad-signature.refs.cose", want: "does not verify under vendor key"},
		{name: "expired", set: "messenger-1.8.0-expired.refs.cose", want: "expired at 2025-01-01T00:00:00Z"},
		{name: "wrong vendor key for the image", set: "messenger-1.9.0-other-vendor.refs.cose", want: "not a vendor key trusted for this image"},
		{name: "image not listed", set: "messenger-1.9.0.refs.cose", want: `image "registry.medicus.cloud/messenger", which spec.images does not list`,
			edit: func(s string) string {
				return strings.Replace(s, "id: registry.medicus.cloud/messenger", "id: registry.medicus.cloud/other", 1)
			}},
		{name: "version not accepted", set: "messenger-1.9.0.refs.cose", want: "version 1.9.0 of registry.medicus.cloud/messenger is not one of",
			edit: func(s string) string { return strings.Replace(s, `versions: ["1.9.0"]`, `versions: ["2.0.0"]`, 1) }},
		{name: "not a COSE message", set: "messenger-claims.json", want: "not a COSE_Sign1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := string(rvFile(t, "messenger-image.yaml"))
			if tc.edit != nil {
				y = tc.edit(y)
			}
			_, err := Parse(map[string][]byte{"messenger-image.yaml": []byte(y), "messenger-1.9.0.refs.cose": rvFile(t, tc.set)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestOpenReferenceValues covers the API the CLI uses.
func TestOpenReferenceValues(t *testing.T) {
	keys, err := ParseTrustKeys(rvFile(t, "TEST-ONLY-vendor.pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	s, _, err := OpenReferenceValues(rvFile(t, "messenger-1.9.0.refs.cose"), keys, at)
	if err != nil || s.Image != "registry.medicus.cloud/messenger" || s.Version != "1.9.0" {
		t.Fatalf("%+v %v", s, err)
	}
	if _, _, err := OpenReferenceValues(rvFile(t, "messenger-1.9.0-bad-signature.refs.cose"), keys, at); !errors.Is(err, ErrBadRefValues) {
		t.Fatalf("bad signature: %v", err)
	}
	key, err := ParseSigningKey(rvFile(t, "TEST-ONLY-vendor.key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	s.Values[0].Components["bootrom"] = s.Values[0].Measurement
	if _, err := SignReferenceValues(nil, key, s); err == nil || !strings.Contains(err.Error(), "unknown component") {
		t.Fatalf("sign with an unknown component: %v", err)
	}
}

// FuzzOpenReferenceValues: no input panics the signed-set parser.
func FuzzOpenReferenceValues(f *testing.F) {
	for _, n := range []string{"messenger-1.9.0.refs.cose", "messenger-1.9.0-bad-signature.refs.cose"} {
		b, err := os.ReadFile(filepath.Join(rvDir, n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	pub, err := os.ReadFile(filepath.Join(rvDir, "TEST-ONLY-vendor.pub.pem"))
	if err != nil {
		f.Fatal(err)
	}
	keys, err := ParseTrustKeys(pub)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		OpenReferenceValues(b, keys, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	})
}

// TestSignedBundleWithRefValues: trustd's load path (a security-team-signed bundle directory)
// verifies the vendor's signature on the reference values it carries, and refuses the bundle
// when the vendor signature is bad even though the team signed the bundle.
func TestSignedBundleWithRefValues(t *testing.T) {
	team, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kid, err := keyfile.ID(team.Public())
	if err != nil {
		t.Fatal(err)
	}
	opts := VerifyOptions{Keys: TrustKeys{kid: team.Public()}}
	for _, tc := range []struct{ set, want string }{
		{"messenger-1.9.0.refs.cose", ""},
		{"messenger-1.9.0-bad-signature.refs.cose", "does not verify under vendor key"},
		{"messenger-1.8.0-expired.refs.cose", "expired"},
	} {
		dir := t.TempDir()
		for name, b := range map[string][]byte{"messenger-image.yaml": rvFile(t, "messenger-image.yaml"), "messenger-1.9.0.refs.cose": rvFile(t, tc.set)} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err := SignDir(dir, team, 1, rand.Reader)
		if tc.want != "" {
			if err == nil {
				_, err = LoadSigned(dir, opts)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%s: error %v, want %q", tc.set, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := LoadSigned(dir, opts)
		if err != nil || b.Policy("messenger-image") == nil {
			t.Fatalf("%s: %v", tc.set, err)
		}
	}
}

// TestComponentsNeedTheirRegisters: nothing authenticates an event's label and the guest can
// extend RTMRs and vTPM PCRs after boot, so root in an unapproved guest could meet a policy that
// names components alone (append an event with the approved digest, relabel the real one).
// A policy naming a component must pin the registers it is drawn from, unless every measurement
// it approves is an image's whose signed values pin them.
func TestComponentsNeedTheirRegisters(t *testing.T) {
	m48, m32, d := strings.Repeat("ab", 48), strings.Repeat("ab", 32), strings.Repeat("cd", 48)
	doc := func(tee, measurement, require, components string) map[string][]byte {
		return map[string][]byte{"a.yaml": []byte(`
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: a}
spec:
  tee: [` + tee + `]
  measurements: ["` + measurement + `"]
  require:
    tcbStatus: [unknown]
` + require + `
  components:
` + components)}
	}
	for _, tc := range []struct {
		name, tee, measurement, require, components, want string
	}{
		{"tdx kernel alone", "tdx", m48, "", "    kernel: " + d, "spec.components.kernel: on tdx it is drawn from rtmr2"},
		{"tdx kernel with rtmr2", "tdx", m48, "    measurements: {rtmr2: " + m48 + "}", "    kernel: " + d, ""},
		{"tdx shim needs rtmr1", "tdx", m48, "    measurements: {rtmr2: " + m48 + "}", "    shim: " + d, "pin measurements.rtmr1"},
		{"azure cmdline needs pcr 8 and 9", "azure-snp", m48, "    pcrs: {8: " + m32 + "}", "    cmdline: " + d, "drawn from pcr9"},
		{"azure cmdline with both", "azure-snp", m48, "    pcrs: {8: " + m32 + ", 9: " + m32 + "}", "    cmdline: " + d, ""},
		{"azure uki section", "azure-tdx", m48, "    allowSeptVE: true", "    uki.linux: " + d, "pin pcrs.11"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(doc(tc.tee, tc.measurement, tc.require, tc.components))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}

	// An image policy: the signed values pin rtmr1 and rtmr2, so spec.components may name the
	// kernel (TestSpecComponents); a measurement of the policy's own beside the image may not.
	if _, err := imageBundle(t, "messenger-1.9.0.refs.cose", "  components:\n    kernel: "+d+"\n"); err != nil {
		t.Fatalf("image policy: %v", err)
	}
	_, err := imageBundle(t, "messenger-1.9.0.refs.cose", "  measurements: [\""+m48+"\"]\n  components:\n    kernel: "+d+"\n")
	if err == nil || !strings.Contains(err.Error(), "spec.components.kernel: on tdx it is drawn from rtmr2") {
		t.Fatalf("own measurement beside the image: %v", err)
	}
}

// TestSetComponentsNeedTheirRegisters: a signed set's value that names a component must carry
// the registers it is drawn from (trustctl measure tdx prints RTMR1 and RTMR2 for that).
func TestSetComponentsNeedTheirRegisters(t *testing.T) {
	h := func(n int) attest.Hex { return bytes.Repeat([]byte{7}, n) }
	set := func(regs map[string]attest.Hex) *ReferenceValueSet {
		return &ReferenceValueSet{APIVersion: APIVersion, Kind: ReferenceValueSetKind, Image: "registry.medicus.cloud/x", Version: "1",
			SourceCommit: "4f2a9c1", NotBefore: time.Unix(1, 0), NotAfter: time.Unix(2, 0),
			Values: []ImageValues{{TEE: attest.TDX, Measurement: h(48), Registers: regs, Components: map[string]attest.Hex{"kernel": h(48)}}}}
	}
	if err := set(map[string]attest.Hex{"rtmr1": h(48)}).Check(); err == nil || !strings.Contains(err.Error(), "values[0].components.kernel: on tdx it is drawn from rtmr2") {
		t.Fatalf("kernel without rtmr2: %v", err)
	}
	if err := set(map[string]attest.Hex{"rtmr1": h(48), "rtmr2": h(48)}).Check(); err != nil {
		t.Fatal(err)
	}
}
