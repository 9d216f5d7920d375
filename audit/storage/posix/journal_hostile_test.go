package posix

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"runtime"
	"testing"

	"github.com/medicus-cloud/trust/audit/tlog"
)

// TestJournalHugeCount: a frame whose checksum holds but whose entry count is far more than its
// payload can carry (each entry takes at least its two length bytes) is refused without
// allocating room for that many entries.
func TestJournalHugeCount(t *testing.T) {
	b := journalHeaderBytes(0, tlog.EmptyRoot())
	start := len(b)
	b = binary.BigEndian.AppendUint64(b, 0)
	b = binary.BigEndian.AppendUint32(b, 1<<31) // count
	b = binary.BigEndian.AppendUint32(b, 2)     // payload length
	b = append(b, 0, 0)                         // one empty entry
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, batches, err := parseJournal(bytes.Clone(b))
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatalf("parseJournal accepted a frame of %d entries in 2 bytes: %d batches", 1<<31, len(batches))
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("parseJournal allocated %d bytes for a %d-byte journal", n, len(b))
	}
}
