package tlog

import (
	"crypto/sha256"
	"testing"

	"github.com/medicus-cloud/trust/internal/benchratio"
)

// BenchmarkRatioExtend prints what the tree's right edge costs per record on the append path
// (leaf and node hashes, the partial tiles and entry bundle, the new root), in batches of
// three 600-byte records as group commit makes them under load, against the SHA-256 work
// alone: one leaf hash and one node hash per record. ratio tlog-extend/sha256.
func BenchmarkRatioExtend(b *testing.B) {
	entry := make([]byte, 600)
	batch := [][]byte{entry, entry, entry}
	e := EmptyEdge()
	subject := func(n int) {
		for i := 0; i < n; i += len(batch) {
			next, _, _, err := e.Append(batch)
			if err != nil {
				b.Fatal(err)
			}
			e = next
		}
	}
	leaf, node := append([]byte{0}, entry...), make([]byte, 1+2*HashSize)
	floor := func(n int) {
		for range n {
			sha256.Sum256(leaf)
			sha256.Sum256(node)
		}
	}
	benchratio.Time(b, "tlog-extend/sha256", subject, floor)
}
