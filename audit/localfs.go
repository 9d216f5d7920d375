package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/transparency-dev/merkle/compact"
)

// ed25519Public recomputes the public key from the base64 "alg‖seed" of a note signing key.
func ed25519Public(b64 string) ed25519.PublicKey {
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != 1+ed25519.SeedSize {
		// note.NewSigner accepted the key, so this cannot happen; an invalid key makes
		// NewEd25519VerifierKey fail.
		return nil
	}
	return ed25519.NewKeyFromSeed(b[1:]).Public().(ed25519.PublicKey)
}

func emptyRoot() []byte {
	h := sha256.Sum256(nil)
	return h[:]
}

func (s *state) clone() *state {
	// enc is shared: appends after its length never change what s sees.
	c := &state{size: s.size, bundle: slices.Clone(s.bundle), enc: s.enc, levels: make([][][]byte, len(s.levels))}
	for i, l := range s.levels {
		c.levels[i] = slices.Clone(l)
	}
	hs := slices.Clone(s.rng.Hashes())
	c.rng, _ = rf.NewRange(0, s.size, hs)
	return c
}

type object struct {
	path string
	data []byte
}

// extend computes the tree after appending entries to st, without writing anything: the new
// state, the tiles and bundles that changed (full ones listed in full as well) and the new root.
// st is not changed.
func (old *state) extend(entries [][]byte) (st *state, objs []object, full []string, root []byte, err error) {
	st = old.clone()
	addHash := func(h []byte) {
		for L := 0; ; L++ {
			if L == len(st.levels) {
				st.levels = append(st.levels, nil)
			}
			st.levels[L] = append(st.levels[L], h)
			if len(st.levels[L]) < tileWidth {
				return
			}
			p := tilePath(L, (levelCount(L, st.size)-1)/tileWidth, tileWidth)
			objs = append(objs, object{p, bytes.Join(st.levels[L], nil)})
			full = append(full, p)
			h = subtreeRoot(st.levels[L])
			st.levels[L] = nil
		}
	}
	for _, e := range entries {
		st.bundle = append(st.bundle, e)
		st.enc = binary.BigEndian.AppendUint16(st.enc, uint16(len(e)))
		st.enc = append(st.enc, e...)
		if len(st.bundle) == tileWidth {
			p := tilePath(-1, st.size/tileWidth, tileWidth)
			objs = append(objs, object{p, st.enc})
			full = append(full, p)
			st.bundle, st.enc = nil, nil
		}
		h := hashLeaf(e)
		if err := st.rng.Append(h, nil); err != nil {
			return nil, nil, nil, nil, err
		}
		st.size++
		addHash(h)
	}
	if w := len(st.bundle); w > 0 {
		objs = append(objs, object{tilePath(-1, st.size/tileWidth, w), st.enc})
	}
	for L, hs := range st.levels {
		if len(hs) > 0 && levelCount(L, st.size) != levelCount(L, old.size) {
			objs = append(objs, object{tilePath(L, levelCount(L, st.size)/tileWidth, len(hs)), bytes.Join(hs, nil)})
		}
	}
	root = emptyRoot()
	if st.size > 0 {
		if root, err = st.rng.GetRootHash(nil); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	return st, objs, full, root, nil
}

// writeObjects writes tiles and bundles, each atomically (a temporary file renamed into place).
// When durable, each file and its directory are fsync'ed; otherwise the log's journal is what
// makes them recoverable until the next sync.
func (l *Log) writeObjects(objs []object, durable bool) error {
	dirs := map[string]bool{}
	tmp := filepath.Join(l.dir, tmpDir)
	for _, o := range objs {
		target := filepath.Join(l.pub, filepath.FromSlash(o.path))
		if err := mkdirs(filepath.Dir(target), dirs); err != nil {
			return err
		}
		if durable {
			if err := place(tmp, target, o.data, 0o644, true); err != nil {
				return err
			}
		} else if err := writeNew(target, o.data); err != nil {
			return err
		}
		dirs[filepath.Dir(target)] = true
	}
	if !durable {
		return nil
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
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

// place writes data to target atomically: a temporary file in tmp, fsync'ed when durable,
// renamed over target. The caller fsyncs target's directory.
func place(tmp, target string, data []byte, perm os.FileMode, durable bool) error {
	name, err := writeTemp(tmp, data, perm, durable)
	if err != nil {
		return err
	}
	if err := os.Rename(name, target); err != nil {
		os.Remove(name)
		return err
	}
	return nil
}

// writeTemp writes data to a new temporary file in tmp, fsync'ed when durable, and returns its
// name.
func writeTemp(tmp string, data []byte, perm os.FileMode, durable bool) (name string, err error) {
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
	if durable {
		if err = f.Sync(); err != nil {
			return "", err
		}
	}
	if err = f.Close(); err != nil {
		return "", err
	}
	return f.Name(), nil
}

func writeFileAtomic(tmp, target string, data []byte, perm os.FileMode) error {
	if err := place(tmp, target, data, perm, true); err != nil {
		return err
	}
	return syncDir(filepath.Dir(target))
}

func syncDir(d string) error {
	f, err := os.Open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// recover rebuilds the right edge of the tree and opens a new journal. Without a journal (a new
// log, or a clean Close) it starts from the last checkpoint and its tiles, checked against the
// checkpoint's root, and removes objects written after it by an interrupted commit. With one (a
// crash), it starts from the journal's base, whose tiles were synced, replays every batch the
// journal holds, checks the published checkpoint against the replayed tree, and makes the result
// durable.
func (l *Log) recover(ctx context.Context) (*state, error) {
	src := dirSource(l.pub)
	tmp := filepath.Join(l.dir, tmpDir)
	// Leftovers of interrupted writes.
	if ents, err := os.ReadDir(tmp); err == nil {
		for _, e := range ents {
			_ = os.Remove(filepath.Join(tmp, e.Name()))
		}
	}
	_ = os.Remove(filepath.Join(l.dir, journalFile+".new"))
	base, broot, batches, hasJournal, err := readJournal(l.dir)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	b, err := src.get(ctx, "checkpoint")
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(l.pub, "tile")); err == nil {
			return nil, fmt.Errorf("audit: %w: tiles without a checkpoint in %s", ErrCorrupt, l.pub)
		}
		if hasJournal {
			return nil, fmt.Errorf("audit: %w: a journal without a checkpoint in %s", ErrCorrupt, l.dir)
		}
		st := &state{rng: rf.NewEmptyRange(0)}
		cp, err := signCheckpoint(Checkpoint{Origin: l.signer.Name(), Size: 0, Root: emptyRoot()}, l.signer)
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(tmp, filepath.Join(l.pub, "checkpoint"), cp, 0o644); err != nil {
			return nil, fmt.Errorf("audit: %w: %v", ErrUnwritable, err)
		}
		return st, l.startJournal(st)
	}
	if err != nil {
		return nil, fmt.Errorf("audit: %w: %v", ErrUnwritable, err)
	}
	cp, err := OpenCheckpoint(b, l.vkey)
	if err != nil {
		return nil, fmt.Errorf("audit: %w: %v", ErrCorrupt, err)
	}
	if !hasJournal {
		st, err := loadState(ctx, src, cp)
		if err != nil {
			return nil, fmt.Errorf("audit: %w: %v", ErrCorrupt, err)
		}
		l.discardAfter(st.size)
		return st, l.startJournal(st)
	}
	st, err := loadState(ctx, src, &Checkpoint{Size: base, Root: broot})
	if err != nil {
		return nil, fmt.Errorf("audit: %w: journal base: %v", ErrCorrupt, err)
	}
	total := base
	for _, jb := range batches {
		total += uint64(len(jb.entries))
	}
	if cp.Size < base || cp.Size > total {
		return nil, fmt.Errorf("audit: %w: checkpoint at %d outside the journal's %d to %d", ErrCorrupt, cp.Size, base, total)
	}
	check := func(st *state) error {
		if st.size != cp.Size {
			return nil
		}
		if r := rootOf(st); !sameRoot(r, cp.Root) {
			return fmt.Errorf("audit: %w: the journal does not hash to the checkpoint at size %d", ErrCorrupt, cp.Size)
		}
		return nil
	}
	if err := check(st); err != nil {
		return nil, err
	}
	for _, jb := range batches {
		es := jb.entries
		// Split at the published checkpoint, so that its partial tiles are written again too.
		if n := cp.Size - st.size; cp.Size > st.size && n < uint64(len(es)) {
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
	if st.size != cp.Size {
		ncp, err := signCheckpoint(Checkpoint{Origin: l.signer.Name(), Size: st.size, Root: rootOf(st)}, l.signer)
		if err != nil {
			return nil, err
		}
		if err := place(tmp, filepath.Join(l.pub, "checkpoint"), ncp, 0o644, false); err != nil {
			return nil, fmt.Errorf("audit: %w: %v", ErrUnwritable, err)
		}
	}
	l.discardAfter(st.size)
	if err := syncTree(l.pub); err != nil {
		return nil, fmt.Errorf("audit: %w: %v", ErrUnwritable, err)
	}
	return st, l.startJournal(st)
}

// replay appends a batch read back from the journal and writes its objects.
func (l *Log) replay(old *state, entries [][]byte) (*state, error) {
	if len(entries) == 0 {
		return old, nil
	}
	st, objs, _, _, err := old.extend(entries)
	if err != nil {
		return nil, fmt.Errorf("audit: %w: journal: %v", ErrCorrupt, err)
	}
	if err := l.writeObjects(objs, false); err != nil {
		return nil, fmt.Errorf("audit: %w: %v", ErrUnwritable, err)
	}
	return st, nil
}

// startJournal opens an empty journal whose base is st, whose tiles must be durable.
func (l *Log) startJournal(st *state) error {
	j, err := createJournal(l.dir, st.size, rootOf(st), nil)
	if err != nil {
		return fmt.Errorf("audit: %w: journal: %v", ErrUnwritable, err)
	}
	l.j = j
	return nil
}

func rootOf(st *state) []byte {
	if st.size == 0 {
		return emptyRoot()
	}
	r, err := st.rng.GetRootHash(nil)
	if err != nil {
		// A range built by extend or loadState always has a root.
		panic(err)
	}
	return r
}

func loadState(ctx context.Context, src source, cp *Checkpoint) (*state, error) {
	t := newTree(src, cp.Size)
	ids := compact.RangeNodes(0, cp.Size, nil)
	hs := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := t.node(ctx, id.Level, id.Index)
		if err != nil {
			return nil, err
		}
		hs[i] = h
	}
	rng, err := rf.NewRange(0, cp.Size, hs)
	if err != nil {
		return nil, err
	}
	root := emptyRoot()
	if cp.Size > 0 {
		if root, err = rng.GetRootHash(nil); err != nil {
			return nil, err
		}
	}
	if !sameRoot(root, cp.Root) {
		return nil, fmt.Errorf("tiles do not hash to the root of the checkpoint at size %d", cp.Size)
	}
	st := &state{size: cp.Size, rng: rng}
	for L := 0; levelCount(L, cp.Size) > 0; L++ {
		n := levelCount(L, cp.Size)
		var part [][]byte
		if n%tileWidth > 0 {
			hs, err := t.hashTile(ctx, L, n/tileWidth)
			if err != nil {
				return nil, err
			}
			part = slices.Clone(hs)
		}
		st.levels = append(st.levels, part)
	}
	if w := int(cp.Size % tileWidth); w > 0 {
		b, _, p, err := t.bundle(ctx, cp.Size/tileWidth)
		if err != nil {
			return nil, err
		}
		es, err := parseBundle(b, w)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", p, err)
		}
		for i, e := range es {
			if !bytes.Equal(hashLeaf(e), st.levels[0][i]) {
				return nil, fmt.Errorf("entry %d does not match its hash in tile 0", cp.Size/tileWidth*tileWidth+uint64(i))
			}
		}
		st.bundle, st.enc = es, bytes.Clone(b)
	}
	return st, nil
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
		t, w := n/tileWidth, int(n%tileWidth)
		_ = os.RemoveAll(filepath.Join(l.pub, filepath.FromSlash(tilePath(L, t, tileWidth))))
		for x := w + 1; x < tileWidth; x++ {
			_ = os.Remove(filepath.Join(l.pub, filepath.FromSlash(tilePath(L, t, x))))
		}
		for t++; rm(tilePath(L, t, tileWidth)); t++ {
		}
	}
}
