package tlog

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/transparency-dev/merkle/rfc6962"
)

// Tile geometry of C2SP tlog-tiles: tiles are 8 levels high, 256 hashes (or entries) wide;
// hashes are SHA-256 (RFC 6962).
const (
	TileHeight = 8
	TileWidth  = 1 << TileHeight
	HashSize   = sha256.Size
)

// MaxEntrySize is the largest entry: an entry bundle prefixes each entry with a 16-bit length.
// (audit.MaxRecordSize, the largest encoded record, is the same.)
const MaxEntrySize = 1<<16 - 1

// MaxObjectSize bounds what readers accept of one object: a full entry bundle of maximal
// entries.
const MaxObjectSize = TileWidth * (MaxEntrySize + 2)

// TilePath returns the tlog-tiles path of a tile: level -1 is the entry bundle;
// width 0 or TileWidth is a full tile.
func TilePath(level int, index uint64, width int) string {
	var b strings.Builder
	b.WriteString("tile/")
	if level < 0 {
		b.WriteString("entries")
	} else {
		b.WriteString(strconv.Itoa(level))
	}
	b.WriteByte('/')
	// The index is written in groups of three digits, all but the last prefixed with "x".
	s := strconv.FormatUint(index, 10)
	for len(s)%3 != 0 {
		s = "0" + s
	}
	for i := 0; i < len(s); i += 3 {
		if i > 0 {
			b.WriteByte('/')
		}
		if i+3 < len(s) {
			b.WriteByte('x')
		}
		b.WriteString(s[i : i+3])
	}
	if width > 0 && width < TileWidth {
		b.WriteString(".p/")
		b.WriteString(strconv.Itoa(width))
	}
	return b.String()
}

// errBadPath is returned by ParseTilePath.
var errBadPath = errors.New("not a tlog-tiles path")

// ParseTilePath parses a tlog-tiles tile path strictly (the one encoding TilePath writes of
// each tile): level is -1 for an entry bundle, width is 0 for a full tile.
func ParseTilePath(p string) (level int, index uint64, width int, err error) {
	rest, ok := strings.CutPrefix(p, "tile/")
	if !ok {
		return 0, 0, 0, errBadPath
	}
	lv, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, errBadPath
	}
	if lv == "entries" {
		level = -1
	} else {
		n, err := strconv.Atoi(lv)
		if err != nil || n < 0 || n > 63 || strconv.Itoa(n) != lv {
			return 0, 0, 0, errBadPath
		}
		level = n
	}
	idx, wpart, partial := strings.Cut(rest, ".p/")
	if partial {
		w, err := strconv.Atoi(wpart)
		if err != nil || w < 1 || w >= TileWidth || strconv.Itoa(w) != wpart {
			return 0, 0, 0, errBadPath
		}
		width = w
	}
	groups := strings.Split(idx, "/")
	if len(groups) > 7 {
		return 0, 0, 0, errBadPath
	}
	for i, g := range groups {
		if i < len(groups)-1 {
			var ok bool
			if g, ok = strings.CutPrefix(g, "x"); !ok {
				return 0, 0, 0, errBadPath
			}
		}
		if len(g) != 3 || strings.Trim(g, "0123456789") != "" {
			return 0, 0, 0, errBadPath
		}
		d, _ := strconv.ParseUint(g, 10, 64)
		if index > (1<<64-1-d)/1000 {
			return 0, 0, 0, errBadPath
		}
		index = index*1000 + d
	}
	if TilePath(level, index, width) != p {
		return 0, 0, 0, errBadPath
	}
	return level, index, width, nil
}

// tileCount is how many hashes level L of the tile tree holds for a tree of size n, and
// tileWidthAt the width of tile index i at that level (0 when it does not exist).
func levelCount(level int, size uint64) uint64 {
	if level < 0 {
		level = 0
	}
	return size >> (TileHeight * uint(level))
}

func tileWidthAt(level int, index, size uint64) int {
	n := levelCount(level, size)
	start := index * TileWidth
	if n <= start {
		return 0
	}
	return int(min(n-start, TileWidth))
}

// hashLeaf and hashChildren are RFC 6962 section 2.1: SHA-256(0x00 || entry) and
// SHA-256(0x01 || left || right). Every append hashes each entry once and about one node per
// entry, so they hash on the stack rather than through a hasher allocated per call; the
// proof checks keep rfc6962.DefaultHasher, and TestHashesAreRFC6962 holds the two equal.
func hashLeaf(b []byte) []byte {
	h := sha256.New()
	h.Write([]byte{rfc6962.RFC6962LeafHashPrefix})
	h.Write(b)
	return h.Sum(make([]byte, 0, HashSize))
}

func hashChildren(l, r []byte) []byte {
	if len(l) != HashSize || len(r) != HashSize {
		return rfc6962.DefaultHasher.HashChildren(l, r)
	}
	var in [1 + 2*HashSize]byte
	in[0] = rfc6962.RFC6962NodeHashPrefix
	copy(in[1:], l)
	copy(in[1+HashSize:], r)
	sum := sha256.Sum256(in[:])
	return sum[:]
}

// subtreeRoot hashes a power-of-two run of node hashes up to their common ancestor.
func subtreeRoot(hs [][]byte) []byte {
	for len(hs) > 1 {
		next := make([][]byte, len(hs)/2)
		for i := range next {
			next[i] = hashChildren(hs[2*i], hs[2*i+1])
		}
		hs = next
	}
	return hs[0]
}

// parseHashTile splits a hash tile of the given width.
func parseHashTile(b []byte, width int) ([][]byte, error) {
	if len(b) != width*HashSize {
		return nil, fmt.Errorf("%d bytes, want %d for %d hashes", len(b), width*HashSize, width)
	}
	hs := make([][]byte, width)
	for i := range hs {
		hs[i] = b[i*HashSize : (i+1)*HashSize]
	}
	return hs, nil
}

// ParseBundle splits an entry bundle that must hold exactly width entries. On error it returns
// the entries parsed so far, so that the caller can name the first bad one.
func ParseBundle(b []byte, width int) ([][]byte, error) {
	es := make([][]byte, 0, width)
	for len(b) > 0 {
		if len(es) == width {
			return es, fmt.Errorf("%d bytes after the last of %d entries", len(b), width)
		}
		if len(b) < 2 {
			return es, errors.New("truncated entry length")
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b)-2 < n {
			return es, fmt.Errorf("entry of %d bytes truncated to %d", n, len(b)-2)
		}
		es = append(es, b[2:2+n])
		b = b[2+n:]
	}
	if len(es) != width {
		return es, fmt.Errorf("%d entries, want %d", len(es), width)
	}
	return es, nil
}

// AppendBundle appends entries to dst in the entry-bundle encoding: each a 16-bit length and
// its bytes.
func AppendBundle(dst []byte, entries [][]byte) []byte {
	for _, e := range entries {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(e)))
		dst = append(dst, e...)
	}
	return dst
}
