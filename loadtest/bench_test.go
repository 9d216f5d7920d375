package loadtest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"runtime"
	"sync"
	"testing"

	"github.com/medicus-cloud/trust/enclave/simguest"
	"github.com/medicus-cloud/trust/internal/benchratio"
	"github.com/medicus-cloud/trust/loadtest"
	"github.com/medicus-cloud/trust/seal"
)

// BenchmarkRatioAttestReleaseThroughput prints attest-plus-release requests per second through
// an in-process trustd on 127.0.0.1 (gRPC over TCP, simulated workloads in the same process,
// in-memory audit log) against the rate at which this machine can do only the public-key work
// those requests need: verify the report signature (Ed25519), verify the result token (ECDSA
// P-256) and seal the data key (HPKE X25519). Both sides use every CPU. 1 would mean trustd
// costs nothing beyond that crypto.
func BenchmarkRatioAttestReleaseThroughput(b *testing.B) {
	addr := startTrustd(b)
	subject := func(n int) {
		r, err := loadtest.Run(context.Background(), loadtest.Options{Addr: addr, Insecure: true, Workloads: 8,
			Requests: n, Measurement: measurement(), Name: keyName})
		if err != nil {
			b.Fatal(err)
		}
		if r.Errors != 0 {
			b.Fatalf("%d of %d requests failed: %v %v", r.Errors, r.Requests, r.ErrorsByCode, r.SampleErrors)
		}
	}

	ev, err := simguest.NewInsecure(simguest.Options{Measurement: measurement()}).Evidence(context.Background(), [64]byte{})
	if err != nil {
		b.Fatal(err)
	}
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edSig := ed25519.Sign(edKey, ev.Report)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tokenDigest := sha256.Sum256(make([]byte, 400)) // a result token is a few hundred bytes
	ecSig, _ := ecdsa.SignASN1(rand.Reader, ecKey, tokenDigest[:])
	wk, err := seal.GenerateKey(seal.X25519)
	if err != nil {
		b.Fatal(err)
	}
	pub := wk.Public()
	dek, aad := make([]byte, 32), seal.ReleaseAAD("0123456789abcdef01234567", keyName, []byte("tenant=loadtest"))
	floor := func(n int) {
		workers := runtime.GOMAXPROCS(0)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < n; i += workers {
					if !ed25519.Verify(edPub, ev.Report, edSig) || !ecdsa.VerifyASN1(&ecKey.PublicKey, tokenDigest[:], ecSig) {
						panic("floor: signature did not verify")
					}
					if _, err := pub.Seal(aad, dek); err != nil {
						panic(err)
					}
				}
			})
		}
		wg.Wait()
	}
	benchratio.Throughput(b, "attest-release-throughput/crypto-floor", subject, floor)
}
