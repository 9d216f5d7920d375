package policies

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/internal/benchratio"
)

// realisticBundle is 100 SEV-SNP image policies, each with two launch measurements, TCB
// minimums, HOST_DATA, VMPL, grants with context constraints and a CEL rule.
func realisticBundle(tb testing.TB) *Bundle {
	files := map[string][]byte{}
	for i := range 100 {
		var sb strings.Builder
		fmt.Fprintf(&sb, `apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: image-%03d}
spec:
  tee: [sev-snp]
  measurements: [%s, %s]
  require:
    policySMTAllowed: false
    vmpl: 0
    minTCB: {bootloader: 10, tee: 0, snp: 23, microcode: 84}
    config: {host_data: %s}
  rules:
    - name: fleet
      expr: claims.platform.product == "Genoa" && claims.tcb.snp >= 23 && claims.attributes.guest_policy %% 2u == 0u
  grants:
    secrets: [image-%03d/token]
    dataKeys:
      - name: image-%03d/records
        context: {tenant: [klinikum-nord, klinikum-sued]}
`, i, benchMeasurement(i, 0), benchMeasurement(i, 1), strings.Repeat(fmt.Sprintf("%02x", i), 32), i, i)
		files[fmt.Sprintf("image-%03d.yaml", i)] = []byte(sb.String())
	}
	b, err := Parse(files)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func benchMeasurement(i, j int) attest.Hex {
	m := bytes.Repeat([]byte{byte(i)}, 48)
	m[0], m[1] = byte(j), 0xee
	return m
}

func benchClaims(i int) *attest.Claims {
	return &attest.Claims{TEE: attest.SEVSNP, Measurement: benchMeasurement(i, 1),
		Config:   map[string]attest.Hex{"host_data": bytes.Repeat([]byte{byte(i)}, 32), "id_key_digest": make([]byte, 48)},
		TCB:      map[string]uint64{"bootloader": 10, "tee": 0, "snp": 23, "microcode": 84},
		Platform: map[string]string{"product": "Genoa", "chip_id": strings.Repeat("ab", 64)},
		// Guest policy 0x20000: bit 17 (reserved, must be one) set, bit 16 (SMT allowed) clear, as
		// the SNP verifier reports it in PolicySMTAllowed.
		Attributes:       map[string]uint64{"vmpl": 0, "guest_policy": 0x20000},
		PolicySMTAllowed: new(false),
		ReportData:       make([]byte, 64)}
}

// BenchmarkRatioPolicy prints ratio policy-eval/snp-verify-warm: one evaluation of a realistic
// 100-image bundle against one warm SEV-SNP verification. The floor is what a warm SNP
// verification is designed to approach, one ECDSA P-384 verification with the cached VCEK
// (plus SHA-384 over the 0x2A0 signed bytes of a report): attest/snp's verifier needs its
// test-only certificate fixture, which lives in that package's tests, and its own
// BenchmarkRatioSNP reports snp-verify-warm/p384-verify to convert between the two.
//
// benchratio.Time cannot be used here: it calls testing.Benchmark, which deadlocks inside a
// running benchmark (both hold the testing package's benchmark lock), so this benchmark times
// both sides itself and reports through benchratio.Value.
func BenchmarkRatioPolicy(b *testing.B) {
	bundle := realisticBundle(b)
	c := benchClaims(57)
	if d, err := bundle.Evaluate(c); err != nil || d.Policy != "image-057" {
		b.Fatalf("%v %v", d, err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	report := make([]byte, 0x2a0)
	rand.Read(report)
	sum := sha512.Sum384(report)
	sig, _ := ecdsa.SignASN1(rand.Reader, key, sum[:])
	eval := func() error {
		_, err := bundle.Evaluate(c)
		return err
	}
	verify := func() error {
		s := sha512.Sum384(report)
		if !ecdsa.VerifyASN1(&key.PublicKey, s[:], sig) {
			return errors.New("signature does not verify")
		}
		return nil
	}
	benchratio.Value(b, "policy-eval/snp-verify-warm", benchratio.PerOp(b, eval)/benchratio.PerOp(b, verify))
}

func BenchmarkEvaluate(b *testing.B) {
	bundle := realisticBundle(b)
	c := benchClaims(57)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bundle.Evaluate(c); err != nil {
			b.Fatal(err)
		}
	}
}
