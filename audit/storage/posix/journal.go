package posix

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/medicus-cloud/trust/audit/tlog"
	"github.com/medicus-cloud/trust/internal/atomicfile"
)

// The journal makes an Append durable with one fdatasync: each batch is appended to it as one
// frame, and acknowledged; its tiles and checkpoint are published afterwards (publish.go).
// Tiles and checkpoints are written without fsync; a background sync (syncfs) makes them durable later, after which the journal
// is started afresh from the synced tree. After a crash, Open rebuilds the tiles and the
// checkpoint from the journal. A clean Close makes everything durable and removes the journal.
//
// Layout (big-endian):
//
//	header: "MTAJRNL1" ‖ base size u64 ‖ base root [32] ‖ crc32c u32
//	frame:  first index u64 ‖ count u32 ‖ payload length u32 ‖ payload ‖ crc32c u32
//
// The base is a tree whose tiles were durable when the journal was created; the payload is
// the batch as an entry bundle. A frame cut short or failing its checksum ends the journal: it
// was never acknowledged (its fdatasync did not return).
//
// The file is created filled with zeros up to the journal limit, and frames overwrite them: the
// fdatasync of a frame then flushes data only, without a file-system journal commit for a new
// file size (which on ext4 also waits for the metadata of every other file changed meanwhile,
// such as the tiles the publisher creates). A frame header of zeros (no entries) ends the
// journal like a torn frame.
const (
	journalFile   = "journal"
	journalMagic  = "MTAJRNL1"
	journalHeader = len(journalMagic) + 8 + tlog.HashSize + 4
	frameHeader   = 8 + 4 + 4
)

// DefaultJournalLimit is how large the journal grows before the log syncs its tiles and starts
// a new one.
const DefaultJournalLimit = 8 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type journal struct {
	f    *os.File
	base uint64 // the tree size the journal starts from
	n    int64  // bytes written
	buf  []byte // the last frame's encoding, reused by the next
}

func journalHeaderBytes(base uint64, root []byte) []byte {
	b := make([]byte, 0, journalHeader)
	b = append(b, journalMagic...)
	b = binary.BigEndian.AppendUint64(b, base)
	b = append(b, root...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func appendFrame(dst []byte, first uint64, entries [][]byte) []byte {
	start := len(dst)
	dst = binary.BigEndian.AppendUint64(dst, first)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(entries)))
	n := 0
	for _, e := range entries {
		n += 2 + len(e)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = tlog.AppendBundle(dst, entries)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// createJournal writes a new journal starting at a tree of size base with the given entries
// after it, zero-filled up to size, durably, and renames it into place over the old one.
func createJournal(dir string, base uint64, root []byte, entries [][]byte, size int64) (*journal, error) {
	b := journalHeaderBytes(base, root)
	if len(entries) > 0 {
		b = appendFrame(b, base, entries)
	}
	tmp := filepath.Join(dir, journalFile+".new")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(b); err != nil {
		return nil, err
	}
	if err := zeroFill(f, int64(len(b)), size); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, journalFile)); err != nil {
		return nil, err
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return nil, err
	}
	ok = true
	return &journal{f: f, base: base, n: int64(len(b))}, nil
}

// zeroFill writes zeros from off up to size (nothing if size <= off).
func zeroFill(f *os.File, off, size int64) error {
	zeros := make([]byte, 1<<20)
	for off < size {
		n := min(int64(len(zeros)), size-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// append writes one frame and returns once it is on stable storage.
func (j *journal) append(first uint64, entries [][]byte) error {
	b := appendFrame(j.buf[:0], first, entries)
	if cap(b) <= 1<<20 { // a batch of large records does not pin its frame
		j.buf = b
	}
	if _, err := j.f.WriteAt(b, j.n); err != nil {
		return err
	}
	if err := fdatasync(j.f); err != nil {
		return err
	}
	j.n += int64(len(b))
	return nil
}

func (j *journal) close() error { return j.f.Close() }

// journalBatch is one frame read back.
type journalBatch struct {
	first   uint64
	entries [][]byte
}

// readJournal reads the journal in dir. ok is false when there is none (a clean shutdown).
func readJournal(dir string) (base uint64, root []byte, batches []journalBatch, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, journalFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil, nil, false, nil
	}
	if err != nil {
		return 0, nil, nil, false, err
	}
	base, root, batches, err = parseJournal(b)
	return base, root, batches, err == nil, err
}

// parseJournal reads a journal's header and its frames up to the first torn one.
func parseJournal(b []byte) (base uint64, root []byte, batches []journalBatch, err error) {
	if len(b) < journalHeader || string(b[:len(journalMagic)]) != journalMagic ||
		crc32.Checksum(b[:journalHeader-4], castagnoli) != binary.BigEndian.Uint32(b[journalHeader-4:]) {
		return 0, nil, nil, fmt.Errorf("%w: %s: bad header", tlog.ErrCorrupt, journalFile)
	}
	base = binary.BigEndian.Uint64(b[len(journalMagic):])
	root = append([]byte(nil), b[len(journalMagic)+8:journalHeader-4]...)
	next := base
	for rest := b[journalHeader:]; len(rest) >= frameHeader; {
		first := binary.BigEndian.Uint64(rest)
		count := int(binary.BigEndian.Uint32(rest[8:]))
		n := int(binary.BigEndian.Uint32(rest[12:]))
		if count == 0 {
			break // the zeros after the last frame: a frame has at least one entry
		}
		if n < 0 || len(rest) < frameHeader+n+4 {
			break // torn tail
		}
		body := rest[:frameHeader+n]
		if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(rest[frameHeader+n:]) {
			break // torn tail
		}
		if first != next {
			return 0, nil, nil, fmt.Errorf("%w: %s: frame starts at %d, want %d", tlog.ErrCorrupt, journalFile, first, next)
		}
		if count > n/2 {
			// Every entry takes at least its two length bytes: do not make room for more.
			return 0, nil, nil, fmt.Errorf("%w: %s: frame at %d: %d entries in %d bytes", tlog.ErrCorrupt, journalFile, first, count, n)
		}
		es, err := tlog.ParseBundle(body[frameHeader:], count)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("%w: %s: frame at %d: %v", tlog.ErrCorrupt, journalFile, first, err)
		}
		batches = append(batches, journalBatch{first, es})
		next += uint64(count)
		rest = rest[frameHeader+n+4:]
	}
	return base, root, batches, nil
}
