package posix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/tlog"
	"github.com/medicus-cloud/trust/internal/atomicfile"
)

// writeTiles writes tiles and bundles without fsync: the journal is what makes them
// recoverable until the next sync.
func (l *Log) writeTiles(tiles []tlog.Tile) error {
	dirs := map[string]bool{}
	for _, t := range tiles {
		target := filepath.Join(l.pub, filepath.FromSlash(t.Path()))
		if err := mkdirs(filepath.Dir(target), dirs); err != nil {
			return err
		}
		if err := writeNew(target, t.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// mkdirs creates d and any missing parents, marking the parents whose entries changed.
func mkdirs(d string, dirty map[string]bool) error {
	if _, err := os.Stat(d); err == nil {
		return nil
	}
	if err := mkdirs(filepath.Dir(d), dirty); err != nil {
		return err
	}
	if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	dirty[filepath.Dir(d)] = true
	return nil
}

// writeNew writes a tile or bundle in place, without a temporary file: it is a new name (a
// partial tile of a new width, a new full tile) that no published checkpoint covers until it is
// complete, or a leftover beyond the tree that is overwritten.
func writeNew(target string, data []byte) error {
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// place writes data to target atomically but not durably: a temporary file in tmp renamed
// over target. It is for the checkpoints the journal covers (a later sync makes them durable);
// the durable writes go through atomicfile.
func place(tmp, target string, data []byte, perm os.FileMode) error {
	name, err := writeTemp(tmp, data, perm)
	if err != nil {
		return err
	}
	if err := os.Rename(name, target); err != nil {
		os.Remove(name)
		return err
	}
	return nil
}

// writeTemp writes data to a new temporary file in tmp, without fsync, and returns its name.
func writeTemp(tmp string, data []byte, perm os.FileMode) (name string, err error) {
	f, err := os.CreateTemp(tmp, "w-*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return "", err
	}
	if err = f.Chmod(perm); err != nil {
		return "", err
	}
	if err = f.Close(); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// recover rebuilds the right edge of the tree and opens a new journal. Without a journal (a new
// log, or a clean Close) it starts from the last checkpoint and its tiles, checked against the
// checkpoint's root, and removes objects written after it by an interrupted commit. With one (a
// crash), it starts from the journal's base, whose tiles were synced, replays every batch the
// journal holds, checks the published checkpoint against the replayed tree, and makes the result
// durable.
func (l *Log) recover(ctx context.Context) (*tlog.Edge, error) {
	src := tlog.DirReader(l.pub)
	tmp := filepath.Join(l.dir, tmpDir)
	// Leftovers of interrupted writes.
	if ents, err := os.ReadDir(tmp); err == nil {
		for _, e := range ents {
			_ = os.Remove(filepath.Join(tmp, e.Name()))
		}
	}
	for _, d := range []string{l.dir, l.pub} {
		// atomicfile's temporary files (note key, first checkpoint).
		ms, _ := filepath.Glob(filepath.Join(d, ".*.tmp-*"))
		for _, m := range ms {
			_ = os.Remove(m)
		}
	}
	_ = os.Remove(filepath.Join(l.dir, journalFile+".new"))
	base, broot, batches, hasJournal, err := readJournal(l.dir)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	b, err := src(ctx, "checkpoint")
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(l.pub, "tile")); err == nil {
			return nil, fmt.Errorf("audit: %w: tiles without a checkpoint in %s", tlog.ErrCorrupt, l.pub)
		}
		if hasJournal {
			return nil, fmt.Errorf("audit: %w: a journal without a checkpoint in %s", tlog.ErrCorrupt, l.dir)
		}
		st := tlog.EmptyEdge()
		cp, err := tlog.SignCheckpoint(tlog.Checkpoint{Origin: l.signer.Name(), Size: 0, Root: tlog.EmptyRoot()}, l.signer)
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(filepath.Join(l.pub, "checkpoint"), cp, 0o644); err != nil {
			return nil, fmt.Errorf("audit: %w: %v", tlog.ErrUnwritable, err)
		}
		return st, l.startJournal(st)
	}
	if err != nil {
		return nil, fmt.Errorf("audit: %w: %v", tlog.ErrUnwritable, err)
	}
	cp, err := tlog.OpenCheckpoint(b, l.vkey)
	if err != nil {
		return nil, fmt.Errorf("audit: %w: %v", tlog.ErrCorrupt, err)
	}
	if !hasJournal {
		st, err := tlog.LoadEdge(ctx, src, cp)
		if err != nil {
			return nil, err
		}
		l.discardAfter(st.Size())
		return st, l.startJournal(st)
	}
	st, err := tlog.LoadEdge(ctx, src, &tlog.Checkpoint{Size: base, Root: broot})
	if err != nil {
		return nil, fmt.Errorf("audit: journal base: %w", err)
	}
	total := base
	for _, jb := range batches {
		total += uint64(len(jb.entries))
	}
	if cp.Size < base || cp.Size > total {
		return nil, fmt.Errorf("audit: %w: checkpoint at %d outside the journal's %d to %d", tlog.ErrCorrupt, cp.Size, base, total)
	}
	check := func(st *tlog.Edge) error {
		if st.Size() != cp.Size {
			return nil
		}
		if !bytes.Equal(st.Root(), cp.Root) {
			return fmt.Errorf("audit: %w: the journal does not hash to the checkpoint at size %d", tlog.ErrCorrupt, cp.Size)
		}
		return nil
	}
	if err := check(st); err != nil {
		return nil, err
	}
	for _, jb := range batches {
		es := jb.entries
		// Split at the published checkpoint, so that its partial tiles are written again too.
		if n := cp.Size - st.Size(); cp.Size > st.Size() && n < uint64(len(es)) {
			if st, err = l.replay(st, es[:n]); err != nil {
				return nil, err
			}
			if err := check(st); err != nil {
				return nil, err
			}
			es = es[n:]
		}
		if st, err = l.replay(st, es); err != nil {
			return nil, err
		}
		if err := check(st); err != nil {
			return nil, err
		}
	}
	if st.Size() != cp.Size {
		ncp, err := tlog.SignCheckpoint(tlog.Checkpoint{Origin: l.signer.Name(), Size: st.Size(), Root: st.Root()}, l.signer)
		if err != nil {
			return nil, err
		}
		if err := place(tmp, filepath.Join(l.pub, "checkpoint"), ncp, 0o644); err != nil {
			return nil, fmt.Errorf("audit: %w: %v", tlog.ErrUnwritable, err)
		}
	}
	l.discardAfter(st.Size())
	if err := syncTree(l.pub); err != nil {
		return nil, fmt.Errorf("audit: %w: %v", tlog.ErrUnwritable, err)
	}
	return st, l.startJournal(st)
}

// replay appends a batch read back from the journal and writes its tiles.
func (l *Log) replay(old *tlog.Edge, entries [][]byte) (*tlog.Edge, error) {
	if len(entries) == 0 {
		return old, nil
	}
	// Only records reach the journal (Append marshals them): anything else was not written by
	// a log, and must not be signed into one.
	for i, e := range entries {
		if _, err := audit.ParseRecord(e); err != nil {
			return nil, fmt.Errorf("audit: %w: journal: entry %d: %v", tlog.ErrCorrupt, old.Size()+uint64(i), err)
		}
	}
	st, tiles, _, err := old.Append(entries)
	if err != nil {
		return nil, fmt.Errorf("audit: %w: journal: %v", tlog.ErrCorrupt, err)
	}
	if err := l.writeTiles(tiles); err != nil {
		return nil, fmt.Errorf("audit: %w: %v", tlog.ErrUnwritable, err)
	}
	return st, nil
}

// startJournal opens an empty journal whose base is st, whose tiles must be durable.
func (l *Log) startJournal(st *tlog.Edge) error {
	j, err := createJournal(l.dir, st.Size(), st.Root(), nil, l.jlimit)
	if err != nil {
		return fmt.Errorf("audit: %w: journal: %v", tlog.ErrUnwritable, err)
	}
	l.j = j
	return nil
}

// levelCount is how many hashes level L of the tile tree holds for a tree of size n (level -1,
// the entries, as many as level 0).
func levelCount(level int, size uint64) uint64 {
	return size >> (tlog.TileHeight * uint(max(level, 0)))
}

// discardAfter removes the tiles and bundles beyond a tree of the given size: an interrupted
// commit may have left some, and they must never be served or mistaken for committed ones.
func (l *Log) discardAfter(size uint64) {
	rm := func(p string) bool {
		fp := filepath.Join(l.pub, filepath.FromSlash(p))
		_, err1 := os.Stat(fp)
		_, err2 := os.Stat(fp + ".p")
		_ = os.RemoveAll(fp)
		_ = os.RemoveAll(fp + ".p")
		return err1 == nil || err2 == nil
	}
	for L := -1; L < 8; L++ {
		n := levelCount(L, size)
		t, w := n/tlog.TileWidth, int(n%tlog.TileWidth)
		_ = os.RemoveAll(filepath.Join(l.pub, filepath.FromSlash(tlog.TilePath(L, t, tlog.TileWidth))))
		for x := w + 1; x < tlog.TileWidth; x++ {
			_ = os.Remove(filepath.Join(l.pub, filepath.FromSlash(tlog.TilePath(L, t, x))))
		}
		for t++; rm(tlog.TilePath(L, t, tlog.TileWidth)); t++ {
		}
	}
}
