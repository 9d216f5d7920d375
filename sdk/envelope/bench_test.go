package envelope

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"io"
	"testing"

	"github.com/medicus-cloud/trust/internal/benchratio"
)

// BenchmarkRatioStream prints two lines for make bench:
//
//	ratio stream-encrypt/aes-gcm-raw  NewWriter throughput over raw AES-256-GCM Seal of the same
//	                                  64 KiB buffers, one goroutine (1 is the floor; higher is better)
//	ratio stream-peak-heap-mib        heap growth in MiB while streaming 1 GiB through
//	                                  NewWriter and NewReader
//
// The throughputs are timed here rather than with benchratio.Throughput: testing.Benchmark
// called from inside a running benchmark waits for a lock its caller holds, and deadlocks.
func BenchmarkRatioStream(b *testing.B) {
	ks := localSource(b)
	buf := pattern(DefaultChunkSize)
	w, err := NewWriter(context.Background(), ks, io.Discard, testKey, caseCtx, nil)
	if err != nil {
		b.Fatal(err)
	}
	subject := func(n int) {
		for range n {
			if _, err := w.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	block, _ := aes.NewCipher(buf[:32])
	aead, _ := cipher.NewGCM(block)
	out := make([]byte, 0, len(buf)+aead.Overhead())
	nonce := make([]byte, aead.NonceSize())
	floor := func(n int) {
		for range n {
			nonce[0]++
			out = aead.Seal(out[:0], nonce, buf, nil)
		}
	}
	// Best of three, alternating, so a burst of load from a neighbour hits both alike.
	s, f := benchratio.NsPerOp(subject), benchratio.NsPerOp(floor)
	for range 2 {
		s, f = min(s, benchratio.NsPerOp(subject)), min(f, benchratio.NsPerOp(floor))
	}
	w.Close()
	benchratio.Value(b, "stream-encrypt/aes-gcm-raw", f/s)
	peak, _ := streamThrough(b, ks, 1<<30)
	benchratio.Value(b, "stream-peak-heap-mib", peak)
}
