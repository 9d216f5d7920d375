package tlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/transparency-dev/merkle/compact"
)

// Tile is a hash tile (Level >= 0) or an entry bundle (Level -1) as it is after an append:
// Width hashes or entries, TileWidth when full.
type Tile struct {
	Level int
	Index uint64
	Width int
	data  []byte   // an entry bundle, encoded
	hs    [][]byte // a hash tile's hashes, encoded only when asked (Bytes)
}

// Bytes is the tile's content as tlog-tiles serves it. A hash tile is encoded at each call:
// most partial tiles of a busy log are superseded before anyone writes them.
func (t Tile) Bytes() []byte {
	if t.Level < 0 {
		return t.data
	}
	return bytes.Join(t.hs, nil)
}

// Path is the tile's tlog-tiles path.
func (t Tile) Path() string { return TilePath(t.Level, t.Index, t.Width) }

// Full reports whether the tile is full (it never changes again).
func (t Tile) Full() bool { return t.Width == TileWidth }

// Edge is the right edge of a log's tree: everything the next append needs. It is immutable.
type Edge struct{ st *state }

// state is the right edge of the tree.
type state struct {
	size   uint64
	rng    *compact.Range
	levels [][][]byte // levels[L]: hashes of the partial tile at level L
	bundle [][]byte   // entries of the partial entry bundle
	enc    []byte     // the partial entry bundle, encoded
}

var rf = &compact.RangeFactory{Hash: hashChildren}

// EmptyEdge is the edge of the empty tree.
func EmptyEdge() *Edge { return &Edge{&state{rng: rf.NewEmptyRange(0)}} }

// LoadEdge reads the edge of the tree of cp (already verified, or a tree known some other way)
// from r and checks that the tiles hash to cp's root and that the partial entry bundle matches
// its hashes. Every failure wraps ErrCorrupt.
func LoadEdge(ctx context.Context, r ObjectReader, cp *Checkpoint) (*Edge, error) {
	if cp.Size == 0 {
		if !sameRoot(cp.Root, EmptyRoot()) {
			return nil, fmt.Errorf("audit: %w: empty tree with a non-empty root", ErrCorrupt)
		}
		return EmptyEdge(), nil
	}
	st, err := loadState(ctx, r, cp)
	if err != nil {
		return nil, fmt.Errorf("audit: %w: %v", ErrCorrupt, err)
	}
	return &Edge{st}, nil
}

// Size is the number of entries of the tree.
func (e *Edge) Size() uint64 { return e.st.size }

// Root is the tree's root hash.
func (e *Edge) Root() []byte {
	if e.st.size == 0 {
		return EmptyRoot()
	}
	r, err := e.st.rng.GetRootHash(nil)
	if err != nil {
		// A range built by Append or LoadEdge always has a root.
		panic(err)
	}
	return r
}

// Append returns the edge after entries, the tiles and entry bundles that changed (in the
// order they were completed: full ones first, then the partial ones), and the new root hash.
// e is not changed.
func (e *Edge) Append(entries [][]byte) (*Edge, []Tile, []byte, error) {
	st, tiles, root, err := e.st.extend(entries)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("audit: %v", err)
	}
	return &Edge{st}, tiles, root, nil
}

func (s *state) clone() *state {
	// The partial bundle, its encoding and the partial tiles' hashes are only ever appended to,
	// so the clone shares them: what the clone appends lies beyond the lengths s sees. (Two
	// clones of one state may write over each other's appends there, but the log extends only
	// its newest edge; an extension that fails is dropped.) The compact range is changed in
	// place by Append, so it is copied.
	c := &state{size: s.size, bundle: s.bundle, enc: s.enc, levels: slices.Clone(s.levels)}
	hs := slices.Clone(s.rng.Hashes())
	c.rng, _ = rf.NewRange(0, s.size, hs)
	return c
}

// extend computes the tree after appending entries to old, without writing anything: the new
// state, the tiles and bundles that changed and the new root. old is not changed.
func (old *state) extend(entries [][]byte) (st *state, tiles []Tile, root []byte, err error) {
	st = old.clone()
	addHash := func(h []byte) {
		for L := 0; ; L++ {
			if L == len(st.levels) {
				st.levels = append(st.levels, nil)
			}
			st.levels[L] = append(st.levels[L], h)
			if len(st.levels[L]) < TileWidth {
				return
			}
			tiles = append(tiles, Tile{Level: L, Index: (levelCount(L, st.size) - 1) / TileWidth, Width: TileWidth, hs: st.levels[L]})
			h = subtreeRoot(st.levels[L])
			st.levels[L] = nil
		}
	}
	for _, e := range entries {
		if len(e) > MaxEntrySize {
			return nil, nil, nil, fmt.Errorf("entry %d of %d bytes, more than %d", st.size, len(e), MaxEntrySize)
		}
		st.bundle = append(st.bundle, e)
		if st.enc == nil {
			// A new bundle: room for a full one of entries like this (records are under a
			// kilobyte), rather than growing and copying it eight times on the way to 256.
			st.enc = make([]byte, 0, TileWidth*(2+min(len(e), 1024)))
		}
		st.enc = binary.BigEndian.AppendUint16(st.enc, uint16(len(e)))
		st.enc = append(st.enc, e...)
		if len(st.bundle) == TileWidth {
			tiles = append(tiles, Tile{Level: -1, Index: st.size / TileWidth, Width: TileWidth, data: st.enc})
			st.bundle, st.enc = nil, nil
		}
		h := hashLeaf(e)
		if err := st.rng.Append(h, nil); err != nil {
			return nil, nil, nil, err
		}
		st.size++
		addHash(h)
	}
	if w := len(st.bundle); w > 0 {
		tiles = append(tiles, Tile{Level: -1, Index: st.size / TileWidth, Width: w, data: st.enc})
	}
	for L, hs := range st.levels {
		if len(hs) > 0 && levelCount(L, st.size) != levelCount(L, old.size) {
			tiles = append(tiles, Tile{Level: L, Index: levelCount(L, st.size) / TileWidth, Width: len(hs), hs: hs})
		}
	}
	root = EmptyRoot()
	if st.size > 0 {
		if root, err = st.rng.GetRootHash(nil); err != nil {
			return nil, nil, nil, err
		}
	}
	return st, tiles, root, nil
}

func loadState(ctx context.Context, src ObjectReader, cp *Checkpoint) (*state, error) {
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
	root := EmptyRoot()
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
		if n%TileWidth > 0 {
			hs, err := t.hashTile(ctx, L, n/TileWidth)
			if err != nil {
				return nil, err
			}
			part = slices.Clone(hs)
		}
		st.levels = append(st.levels, part)
	}
	if w := int(cp.Size % TileWidth); w > 0 {
		b, _, p, err := t.bundle(ctx, cp.Size/TileWidth)
		if err != nil {
			return nil, err
		}
		es, err := ParseBundle(b, w)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", p, err)
		}
		for i, e := range es {
			if !bytes.Equal(hashLeaf(e), st.levels[0][i]) {
				return nil, fmt.Errorf("entry %d does not match its hash in tile 0", cp.Size/TileWidth*TileWidth+uint64(i))
			}
		}
		st.bundle, st.enc = es, bytes.Clone(b)
	}
	return st, nil
}
