package sgx

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/sgx/sgxtest"
	"github.com/medicus-cloud/trust/internal/benchratio"
)

// BenchmarkRatioSGX compares a warm verification (PCK chain and collateral already verified and
// cached by fingerprint: parsing, two ECDSA verifications, hashing and TCB matching remain) with
// one raw ECDSA P-256 verification over the same signed bytes.
//
// It times both sides itself: benchratio.Time calls testing.Benchmark, which deadlocks inside a
// running benchmark (both take the testing package's benchmark lock).
func BenchmarkRatioSGX(b *testing.B) {
	v, err := New(Options{Root: fixtureRoot(b), CollateralDir: "testdata/collateral"})
	if err != nil {
		b.Fatal(err)
	}
	ev := &attest.Evidence{TEE: attest.SGX, Report: readFixture(b, "quote_v3.bin")}
	opts := attest.Options{Now: sgxtest.Now}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signed := ev.Report[:headerSize+ReportBodySize]
	h := sha256.Sum256(signed)
	sig, _ := ecdsa.SignASN1(rand.Reader, key, h[:])
	warm := benchratio.PerOp(b, func() error {
		_, err := v.Verify(context.Background(), ev, opts)
		return err
	})
	raw := benchratio.PerOp(b, func() error {
		h := sha256.Sum256(signed)
		if !ecdsa.VerifyASN1(&key.PublicKey, h[:], sig) {
			return errors.New("raw verify failed")
		}
		return nil
	})
	benchratio.Value(b, "sgx-verify-warm/p256-verify", warm/raw)
	for b.Loop() {
	}
}
