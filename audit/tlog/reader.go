package tlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ObjectReader returns the object of a log at a tlog-tiles path: "checkpoint", "tile/<L>/<N>"
// or "tile/entries/<N>", each possibly with a ".p/<W>" partial suffix. A partial tile of width
// W is the first W hashes (or entries) of its tile, whatever the tile holds now; a reader may
// also answer fs.ErrNotExist for a partial tile once the full one exists. A missing object is
// an error wrapping fs.ErrNotExist.
type ObjectReader func(ctx context.Context, path string) ([]byte, error)

// DirReader reads a log's objects from a directory in the tlog-tiles layout (the public tree
// of a posix log, or a copy of any log).
func DirReader(dir string) ObjectReader {
	return func(ctx context.Context, p string) ([]byte, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, MaxObjectSize+1))
		if err != nil {
			return nil, err
		}
		if len(b) > MaxObjectSize {
			return nil, fmt.Errorf("%s: larger than %d bytes", p, MaxObjectSize)
		}
		return b, nil
	}
}

// httpTimeout bounds one object's fetch by HTTPReader's default client: a full entry bundle
// (16 MiB at most) over a slow link, not a server that never answers.
var httpTimeout = 5 * time.Minute

// HTTPReader reads a log's objects below the URL base (its root, where "checkpoint" is) with
// client (if nil, one that gives up on an object after 5 minutes). 404 is fs.ErrNotExist.
func HTTPReader(base string, client *http.Client) ObjectReader {
	if client == nil {
		client = &http.Client{Timeout: httpTimeout}
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return func(ctx context.Context, p string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+p, nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusNotFound:
			return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
		case resp.StatusCode != http.StatusOK:
			return nil, fmt.Errorf("%s: HTTP %s", p, resp.Status)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, MaxObjectSize+1))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if len(b) > MaxObjectSize {
			return nil, fmt.Errorf("%s: larger than %d bytes", p, MaxObjectSize)
		}
		return b, nil
	}
}

// tree reads the tiles of a tree of a known size, caching them.
type tree struct {
	src   ObjectReader
	size  uint64
	tiles map[string][][]byte
}

func newTree(src ObjectReader, size uint64) *tree {
	return &tree{src: src, size: size, tiles: map[string][][]byte{}}
}

// fetch gets a tile of width w, falling back to a prefix of the full tile when the partial one
// is gone (it is deleted once the full tile exists).
func (t *tree) fetch(ctx context.Context, level int, index uint64, w int) ([]byte, string, error) {
	p := TilePath(level, index, w)
	b, err := t.src(ctx, p)
	if err == nil || w == TileWidth || !errors.Is(err, fs.ErrNotExist) {
		return b, p, err
	}
	full := TilePath(level, index, TileWidth)
	b, ferr := t.src(ctx, full)
	if errors.Is(ferr, fs.ErrNotExist) {
		return nil, p, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	}
	if ferr != nil {
		return nil, full, ferr
	}
	if level >= 0 {
		if len(b) < w*HashSize {
			return nil, full, fmt.Errorf("%s: %d bytes, too short for width %d", full, len(b), w)
		}
		return b[:w*HashSize], p, nil
	}
	// An entry bundle prefix ends after the w-th entry.
	off := 0
	for range w {
		if len(b)-off < 2 {
			return nil, full, fmt.Errorf("%s: shorter than %d entries", full, w)
		}
		off += 2 + int(binary.BigEndian.Uint16(b[off:]))
	}
	if off > len(b) {
		return nil, full, fmt.Errorf("%s: shorter than %d entries", full, w)
	}
	return b[:off], p, nil
}

// hashTile returns the hashes of tile index at level, as wide as the tree size makes it.
func (t *tree) hashTile(ctx context.Context, level int, index uint64) ([][]byte, error) {
	w := tileWidthAt(level, index, t.size)
	if w == 0 {
		return nil, fmt.Errorf("tile %d/%d is outside a tree of size %d", level, index, t.size)
	}
	key := TilePath(level, index, w)
	if hs, ok := t.tiles[key]; ok {
		return hs, nil
	}
	b, p, err := t.fetch(ctx, level, index, w)
	if err != nil {
		return nil, err
	}
	hs, err := parseHashTile(b, w)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", p, err)
	}
	t.tiles[key] = hs
	return hs, nil
}

// bundle returns the raw entry bundle index, and its width.
func (t *tree) bundle(ctx context.Context, index uint64) ([]byte, int, string, error) {
	w := tileWidthAt(-1, index, t.size)
	if w == 0 {
		return nil, 0, "", fmt.Errorf("entry bundle %d is outside a tree of size %d", index, t.size)
	}
	b, p, err := t.fetch(ctx, -1, index, w)
	return b, w, p, err
}

// node returns the hash of the perfect subtree at level (0 = leaves) and index.
func (t *tree) node(ctx context.Context, level uint, index uint64) ([]byte, error) {
	L := int(level / TileHeight)
	r := level % TileHeight
	first := index << r
	hs, err := t.hashTile(ctx, L, first/TileWidth)
	if err != nil {
		return nil, err
	}
	off := int(first % TileWidth)
	if off+1<<r > len(hs) {
		return nil, fmt.Errorf("node %d/%d is outside a tree of size %d", level, index, t.size)
	}
	return subtreeRoot(hs[off : off+1<<r]), nil
}
