package audit

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
)

// maxObject bounds what we read of one log object: a full entry bundle of maximal entries.
const maxObject = tileWidth * (MaxRecordSize + 2)

// source reads objects of a log by tlog-tiles path; a missing object is an fs.ErrNotExist.
type source interface {
	get(ctx context.Context, path string) ([]byte, error)
}

type dirSource string

func (d dirSource) get(ctx context.Context, p string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(string(d), filepath.FromSlash(p)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxObject+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxObject {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, maxObject)
	}
	return b, nil
}

type httpSource struct {
	base   string
	client *http.Client
}

func (h httpSource) get(ctx context.Context, p string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+p, nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.client.Do(req)
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
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxObject+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if len(b) > maxObject {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, maxObject)
	}
	return b, nil
}

// openSource interprets where: an http(s) URL of the log's root, the directory of a local log
// (OpenLocal's Dir) or the directory holding its checkpoint and tiles.
func openSource(where string, client *http.Client) (source, error) {
	if where == "" {
		return nil, errors.New("audit: no log given (directory or URL)")
	}
	if strings.HasPrefix(where, "https://") || strings.HasPrefix(where, "http://") {
		if client == nil {
			client = http.DefaultClient
		}
		if !strings.HasSuffix(where, "/") {
			where += "/"
		}
		return httpSource{base: where, client: client}, nil
	}
	if _, err := os.Stat(filepath.Join(where, publicDir, "checkpoint")); err == nil {
		return dirSource(filepath.Join(where, publicDir)), nil
	}
	return dirSource(where), nil
}

// tree reads the tiles of a tree of a known size, caching them.
type tree struct {
	src   source
	size  uint64
	tiles map[string][][]byte
}

func newTree(src source, size uint64) *tree {
	return &tree{src: src, size: size, tiles: map[string][][]byte{}}
}

// fetch gets a tile of width w, falling back to a prefix of the full tile when the partial one
// is gone (it is deleted once the full tile exists).
func (t *tree) fetch(ctx context.Context, level int, index uint64, w int) ([]byte, string, error) {
	p := tilePath(level, index, w)
	b, err := t.src.get(ctx, p)
	if err == nil || w == tileWidth || !errors.Is(err, fs.ErrNotExist) {
		return b, p, err
	}
	full := tilePath(level, index, tileWidth)
	b, ferr := t.src.get(ctx, full)
	if errors.Is(ferr, fs.ErrNotExist) {
		return nil, p, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	}
	if ferr != nil {
		return nil, full, ferr
	}
	if level >= 0 {
		if len(b) < w*hashSize {
			return nil, full, fmt.Errorf("%s: %d bytes, too short for width %d", full, len(b), w)
		}
		return b[:w*hashSize], p, nil
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
	key := tilePath(level, index, w)
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
	L := int(level / tileHeight)
	r := level % tileHeight
	first := index << r
	hs, err := t.hashTile(ctx, L, first/tileWidth)
	if err != nil {
		return nil, err
	}
	off := int(first % tileWidth)
	if off+1<<r > len(hs) {
		return nil, fmt.Errorf("node %d/%d is outside a tree of size %d", level, index, t.size)
	}
	return subtreeRoot(hs[off : off+1<<r]), nil
}
