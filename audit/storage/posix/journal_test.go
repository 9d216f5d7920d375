package posix

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/medicus-cloud/trust/audit/auditor"
	"github.com/medicus-cloud/trust/audit/audittest"
	"github.com/medicus-cloud/trust/audit/tlog"
)

// crash stops l as a SIGKILL would: no final sync, the journal stays.
func crash(l *Log) {
	l.gc.Close()
	l.out.mu.Lock()
	l.out.dead = true
	l.out.mu.Unlock()
	close(l.out.stop)
	<-l.out.done
	close(l.syncReq)
	<-l.syncDone
	l.j.close()
	l.lock.Close()
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if err := os.RemoveAll(to); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

// TestJournalReplay: every acknowledged record survives a crash, whatever part of the tiles and
// checkpoints written since the last sync reached the disk, and the log verifies against every
// checkpoint an auditor could have seen.
func TestJournalReplay(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name          string
		synced, after int
		lose          bool // the tiles and checkpoints since the sync are lost
	}{
		{"kill", 10, 300, false},
		{"lose all", 10, 300, true},
		{"lose all from empty", 0, 5, true},
		{"lose all at tile edge", 256, 256, true},
		{"nothing after sync", 40, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openSeeded(t, dir, 1)
			appendInOrder(t, l, audittest.Records(0, tc.synced))
			if err := l.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			snap := filepath.Join(t.TempDir(), "log")
			copyTree(t, filepath.Join(dir, publicDir), snap)
			mid := tc.synced + tc.after/2
			appendInOrder(t, l, audittest.Records(tc.synced, mid))
			seen := checkpointOf(t, dir)
			appendInOrder(t, l, audittest.Records(mid, tc.synced+tc.after))
			crash(l)
			if tc.lose {
				copyTree(t, snap, filepath.Join(dir, publicDir))
			}
			l = openSeeded(t, dir, 1)
			if got, want := l.st.Size(), uint64(tc.synced+tc.after); got != want {
				t.Fatalf("reopened at %d, want %d", got, want)
			}
			appendInOrder(t, l, audittest.Records(5000, 5003))
			l.Close()
			for _, trusted := range [][]byte{nil, seen} {
				cp, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: auditor.Source{Log: dir, Key: l.VerifierKey()}, Trusted: trusted})
				if err != nil || cp.Size != uint64(tc.synced+tc.after+3) {
					t.Fatalf("Verify = %v, %v", cp, err)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, journalFile)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("journal left after Close: %v", err)
			}
		})
	}
}

// TestJournalRotation: with a small journal limit the background sync restarts the journal
// many times, and a crash at any point still loses nothing.
func TestJournalRotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := Open(ctx, Options{Dir: dir, JournalLimit: 2 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 600; i += 20 {
		appendInOrder(t, l, audittest.Records(i, i+20))
	}
	crash(l)
	l = openTest(t, dir)
	if l.st.Size() != 600 {
		t.Fatalf("reopened at %d, want 600", l.st.Size())
	}
	l.Close()
	if _, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: auditor.Source{Log: dir, Key: l.VerifierKey()}}); err != nil {
		t.Fatal(err)
	}
}

// TestJournalTornTail: a frame cut short was never acknowledged and is dropped; a frame lost
// from under a published checkpoint is corruption, and the log does not open.
func TestJournalTornTail(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, dir string)
		size uint64 // 0: must not open
	}{
		{"torn", func(t *testing.T, dir string) { appendFile(t, dir, appendFrame(nil, 30, [][]byte{[]byte("x")})[:9]) }, 30},
		{"garbage", func(t *testing.T, dir string) { appendFile(t, dir, []byte("not a frame at all, no")) }, 30},
		{"lost under checkpoint", func(t *testing.T, dir string) {
			p := filepath.Join(dir, journalFile)
			b, _ := os.ReadFile(p)
			b[journalHeader+frameHeader+3] ^= 1
			os.WriteFile(p, b, 0o600)
		}, 0},
		{"bad header", func(t *testing.T, dir string) { flipFile(dir, journalFile, 9) }, 0},
		{"gap", func(t *testing.T, dir string) { appendFile(t, dir, appendFrame(nil, 99, [][]byte{[]byte("x")})) }, 0},
		// A frame whose checksum holds but that is not a record trustd wrote: signing it into
		// the log would vouch for it, and every auditor's Verify would fail there for good.
		{"not a record", func(t *testing.T, dir string) { appendFile(t, dir, appendFrame(nil, 30, [][]byte{[]byte("x")})) }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openSeeded(t, dir, 1)
			appendInOrder(t, l, audittest.Records(0, 10))
			if err := l.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			appendInOrder(t, l, audittest.Records(10, 30))
			if err := l.Publish(ctx); err != nil {
				t.Fatal(err)
			}
			crash(l)
			tc.edit(t, dir)
			l, err := Open(ctx, Options{Dir: dir})
			if tc.size == 0 {
				if err == nil {
					l.Close()
					t.Fatal("opened a log whose journal lost published records")
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if l.st.Size() != tc.size {
				t.Fatalf("reopened at %d, want %d", l.st.Size(), tc.size)
			}
		})
	}
}

// appendFile writes b into the journal right after its last frame, over the zeros that follow.
func appendFile(t *testing.T, dir string, b []byte) {
	t.Helper()
	p := filepath.Join(dir, journalFile)
	j, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	end := journalHeader
	for binary.BigEndian.Uint32(j[end+8:]) != 0 { // frames have at least one entry
		end += frameHeader + int(binary.BigEndian.Uint32(j[end+12:])) + 4
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, int64(end)); err != nil {
		t.Fatal(err)
	}
}

// TestJournalPreallocated: a journal is created at its full size, so that a frame's
// fdatasync has no file size to commit, and reads back whatever its zeros follow.
func TestJournalPreallocated(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(context.Background(), Options{Dir: dir, JournalLimit: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	appendInOrder(t, l, audittest.Records(0, 5))
	fi, err := os.Stat(filepath.Join(dir, journalFile))
	if err != nil || fi.Size() != 64<<10 {
		t.Fatalf("journal size %v, %v; want %d", fi.Size(), err, 64<<10)
	}
	crash(l)
	_, _, batches, ok, err := readJournal(dir)
	n := 0
	for _, b := range batches {
		n += len(b.entries)
	}
	if err != nil || !ok || n != 5 {
		t.Fatalf("journal read back %d entries, %v, %v; want 5", n, ok, err)
	}
}

// TestTilesUnwritable: when the tiles cannot be written after a batch reached the journal, the
// batch is acknowledged (it is durable), publication fails, every later append is refused, no
// checkpoint is published without its tiles, and the reopened log holds the batch, rebuilt from
// the journal.
func TestTilesUnwritable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	fill(t, l, 0, 3)
	if err := l.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	cp := checkpointOf(t, dir)
	bundles := filepath.Join(dir, publicDir, "tile", "entries")
	os.RemoveAll(bundles)
	os.WriteFile(bundles, nil, 0o600)
	if _, err := l.Append(ctx, audittest.Record(3)); err != nil {
		t.Fatalf("Append before publication = %v, want durable", err)
	}
	if err := l.Publish(ctx); !errors.Is(err, tlog.ErrUnwritable) {
		t.Fatalf("Publish with unwritable tiles = %v, want tlog.ErrUnwritable", err)
	}
	for i := range 2 {
		if _, err := l.Append(ctx, audittest.Record(4+i)); !errors.Is(err, tlog.ErrUnwritable) {
			t.Fatalf("Append with unwritable tiles = %v, want tlog.ErrUnwritable", err)
		}
	}
	if !bytes.Equal(checkpointOf(t, dir), cp) {
		t.Fatal("a checkpoint was published without its tiles")
	}
	l.Close()
	os.Remove(bundles)
	l = openTest(t, dir)
	defer l.Close()
	if l.st.Size() != 4 {
		t.Fatalf("reopened at %d, want 4 (the batch that reached the journal)", l.st.Size())
	}
	if _, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: auditor.Source{Log: dir, Key: l.VerifierKey()}}); err != nil {
		t.Fatal(err)
	}
}
