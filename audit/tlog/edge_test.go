package tlog

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
)

// memStore keeps the tiles of appends in a map, as a storage driver would.
type memStore map[string][]byte

func (m memStore) put(tiles []Tile) {
	for _, t := range tiles {
		m[t.Path()] = t.Bytes()
	}
}

func (m memStore) read(_ context.Context, p string) ([]byte, error) {
	if b, ok := m[p]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
}

func entries(from, to int) [][]byte {
	var es [][]byte
	for i := from; i < to; i++ {
		es = append(es, fmt.Appendf(nil, "entry %d", i))
	}
	return es
}

// TestEdge: the root does not depend on how appends are batched, an edge loaded from the
// tiles goes on like the one that wrote them, and Scan and the proofs accept the result.
func TestEdge(t *testing.T) {
	ctx := context.Background()
	const n = 600
	whole, _, want, err := EmptyEdge().Append(entries(0, n))
	if err != nil {
		t.Fatal(err)
	}
	for _, batch := range []int{1, 7, 255, 256, 257} {
		t.Run(fmt.Sprint(batch), func(t *testing.T) {
			m := memStore{}
			e := EmptyEdge()
			var old *Checkpoint
			for i := 0; i < n; i += batch {
				next, tiles, root, err := e.Append(entries(i, min(i+batch, n)))
				if err != nil {
					t.Fatal(err)
				}
				m.put(tiles)
				if !bytes.Equal(root, next.Root()) {
					t.Fatal("Append's root differs from the edge's")
				}
				// Every few batches, reload the edge from the tiles, as a restart does.
				cp := &Checkpoint{Size: next.Size(), Root: root}
				if i%3 == 0 {
					if next, err = LoadEdge(ctx, m.read, cp); err != nil {
						t.Fatal(err)
					}
				}
				if old == nil && next.Size() >= 100 {
					old = cp
				}
				e = next
			}
			if e.Size() != whole.Size() || !bytes.Equal(e.Root(), want) {
				t.Fatalf("batches of %d: size %d root %x, want %d %x", batch, e.Size(), e.Root(), whole.Size(), want)
			}
			cp := &Checkpoint{Size: e.Size(), Root: e.Root()}
			if err := Scan(ctx, m.read, cp, nil, nil); err != nil {
				t.Fatal(err)
			}
			if err := Consistent(ctx, m.read, old, cp); err != nil {
				t.Fatal(err)
			}
			for _, idx := range []uint64{0, 255, 256, n - 1} {
				ent, err := Entry(ctx, m.read, cp, idx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := InclusionProof(ctx, m.read, cp, idx, ent); err != nil {
					t.Fatalf("inclusion of %d: %v", idx, err)
				}
			}
		})
	}
}

func TestLoadEdgeCorrupt(t *testing.T) {
	ctx := context.Background()
	m := memStore{}
	e, tiles, root, err := EmptyEdge().Append(entries(0, 10))
	if err != nil {
		t.Fatal(err)
	}
	m.put(tiles)
	bad := bytes.Clone(root)
	bad[0] ^= 1
	if _, err := LoadEdge(ctx, m.read, &Checkpoint{Size: e.Size(), Root: bad}); err == nil {
		t.Fatal("loaded an edge under the wrong root")
	}
	if _, err := LoadEdge(ctx, m.read, &Checkpoint{Size: 0, Root: root}); err == nil {
		t.Fatal("loaded an empty tree with a non-empty root")
	}
}

// The append path's hashes are RFC 6962's, as transparency-dev/merkle computes them, for
// entries of every size class and for node hashes of any length.
func TestHashesAreRFC6962(t *testing.T) {
	for _, n := range []int{0, 1, 55, 56, 63, 64, 600, MaxEntrySize} {
		e := bytes.Repeat([]byte{byte(n)}, n)
		if got, want := hashLeaf(e), rfc6962.DefaultHasher.HashLeaf(e); !bytes.Equal(got, want) {
			t.Errorf("leaf of %d bytes: %x, want %x", n, got, want)
		}
	}
	for _, tc := range []struct{ l, r int }{{HashSize, HashSize}, {0, HashSize}, {HashSize, 31}, {5, 7}} {
		l, r := bytes.Repeat([]byte{1}, tc.l), bytes.Repeat([]byte{2}, tc.r)
		if got, want := hashChildren(l, r), rfc6962.DefaultHasher.HashChildren(l, r); !bytes.Equal(got, want) {
			t.Errorf("node of %d and %d bytes: %x, want %x", tc.l, tc.r, got, want)
		}
	}
}

// An append that fails (here on an oversized entry after good ones) leaves no trace: the edge
// it started from goes on as if it had never been tried, though the two share their partial
// tiles and bundle.
func TestFailedAppendLeavesNoTrace(t *testing.T) {
	for _, start := range []int{0, 3, 255, 300} {
		base, _, _, err := EmptyEdge().Append(entries(0, start))
		if err != nil {
			t.Fatal(err)
		}
		bad := append(entries(1000, 1010), make([]byte, MaxEntrySize+1))
		if _, _, _, err := base.Append(bad); err == nil {
			t.Fatal("an oversized entry was appended")
		}
		got, tiles, root, err := base.Append(entries(start, start+20))
		if err != nil {
			t.Fatal(err)
		}
		// The same append from an edge that never saw the failure.
		fresh, _, _, _ := EmptyEdge().Append(entries(0, start))
		want, wantTiles, wantRoot, _ := fresh.Append(entries(start, start+20))
		if got.Size() != want.Size() || !bytes.Equal(root, wantRoot) {
			t.Fatalf("from %d: size %d root %x, want %d %x", start, got.Size(), root, want.Size(), wantRoot)
		}
		if len(tiles) != len(wantTiles) {
			t.Fatalf("from %d: %d tiles changed, want %d", start, len(tiles), len(wantTiles))
		}
		for i, tl := range tiles {
			if w := wantTiles[i]; tl.Path() != w.Path() || !bytes.Equal(tl.Bytes(), w.Bytes()) {
				t.Errorf("from %d: tile %s, want %s as the edge that never failed makes it", start, tl.Path(), w.Path())
			}
		}
	}
}
