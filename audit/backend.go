package audit

import (
	"context"
	"fmt"
	"net/http"

	"golang.org/x/mod/sumdb/note"
)

// Hooks for log backends other than the local one (for example a shared database): they keep
// the tree the way the local log does, sign the same checkpoints and serve the same tlog-tiles
// layout, so that every auditor function works on them unchanged.

// ObjectReader returns the object of a log at a tlog-tiles path: "checkpoint", "tile/<L>/<N>"
// or "tile/entries/<N>", each possibly with a ".p/<W>" partial suffix. A partial tile of width
// W is the first W hashes (or entries) of its tile, whatever the tile holds now. A missing
// object is an error wrapping fs.ErrNotExist.
type ObjectReader func(ctx context.Context, path string) ([]byte, error)

func (r ObjectReader) get(ctx context.Context, p string) ([]byte, error) { return r(ctx, p) }

// ReaderHandler serves a log read by r the way Log.Handler serves the local one.
func ReaderHandler(r ObjectReader) http.Handler { return tileHandler{r} }

// ParseTilePath parses a tlog-tiles tile path strictly: level is -1 for an entry bundle, width
// is 0 for a full tile.
func ParseTilePath(p string) (level int, index uint64, width int, err error) {
	level, index, width, err = parseTilePath(p)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("audit: %q: %w", p, err)
	}
	return level, index, width, nil
}

// TilePath is the tlog-tiles path of a tile: level -1 for an entry bundle, width 0 or
// TileWidth for a full tile.
func TilePath(level int, index uint64, width int) string { return tilePath(level, index, width) }

// TileWidth is how many hashes (or entries) a full tile holds.
const TileWidth = tileWidth

// SignCheckpoint signs c as a tlog-checkpoint note with s.
func SignCheckpoint(c Checkpoint, s note.Signer) ([]byte, error) { return signCheckpoint(c, s) }

// NoteVerifierKey derives the verifier key ("name+hash+key") of a note signing key, recomputing
// the public key from the private one so that a tampered key cannot name another public key.
func NoteVerifierKey(skey string) (string, error) { return verifierKey(skey) }

// Tile is a hash tile (Level >= 0) or an entry bundle (Level -1) as it is after an append:
// Width hashes or entries, TileWidth when full.
type Tile struct {
	Level int
	Index uint64
	Width int
	Data  []byte
}

// Edge is the right edge of a log's tree: what the next append needs. It is immutable.
type Edge struct{ st *state }

// EmptyEdge is the edge of the empty tree.
func EmptyEdge() *Edge { return &Edge{&state{rng: rf.NewEmptyRange(0)}} }

// LoadEdge reads the edge of the tree of cp (already verified) from r and checks that the
// tiles hash to cp's root and that the partial entry bundle matches its hashes.
func LoadEdge(ctx context.Context, r ObjectReader, cp *Checkpoint) (*Edge, error) {
	if cp.Size == 0 {
		if !sameRoot(cp.Root, emptyRoot()) {
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

// Append returns the edge after entries (encoded records), the tiles and entry bundles that
// changed, and the new root hash. e is not changed.
func (e *Edge) Append(entries [][]byte) (*Edge, []Tile, []byte, error) {
	st, objs, _, root, err := e.st.extend(entries)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("audit: %v", err)
	}
	tiles := make([]Tile, len(objs))
	for i, o := range objs {
		L, idx, w, err := parseTilePath(o.path)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("audit: %s: %v", o.path, err)
		}
		if w == 0 {
			w = tileWidth
		}
		tiles[i] = Tile{Level: L, Index: idx, Width: w, Data: o.data}
	}
	return &Edge{st}, tiles, root, nil
}

// Consistent checks, with a consistency proof built from the tiles r reads, that the tree of
// cp extends the tree of old (both checkpoints already verified); otherwise the error wraps
// ErrInconsistent.
func Consistent(ctx context.Context, r ObjectReader, old, cp *Checkpoint) error {
	return consistent(ctx, newTree(r, cp.Size), old, cp)
}
