package posix

import (
	"bytes"
	"testing"

	"github.com/medicus-cloud/trust/audit/tlog"
)

// FuzzParseJournal: a journal read back after a crash never panics, and what it yields is a
// run of contiguous batches from its base.
func FuzzParseJournal(f *testing.F) {
	h := journalHeaderBytes(7, tlog.EmptyRoot())
	f.Add(h)
	f.Add(appendFrame(bytes.Clone(h), 7, [][]byte{[]byte("a"), []byte("bc")}))
	f.Add(appendFrame(appendFrame(bytes.Clone(h), 7, [][]byte{[]byte("a")}), 8, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		base, _, batches, err := parseJournal(b)
		if err != nil {
			return
		}
		next := base
		for _, jb := range batches {
			if jb.first != next {
				t.Fatalf("batch at %d, want %d", jb.first, next)
			}
			next += uint64(len(jb.entries))
		}
	})
}
