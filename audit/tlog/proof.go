package tlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Errors of the checks an auditor makes, besides ErrCheckpoint and *EntryError.
var (
	// ErrRootMismatch: the entries and tiles are self-consistent but do not hash to the signed
	// root: the log was rewritten after it was signed.
	ErrRootMismatch = errors.New("audit log does not hash to its checkpoint root")
	// ErrInconsistent: a checkpoint is not an ancestor of the other (a fork, or a log that
	// shrank or was rewritten).
	ErrInconsistent = errors.New("audit checkpoints are inconsistent")
)

// EntryError names the first bad entry of a log.
type EntryError struct {
	Index uint64
	Err   error
}

func (e *EntryError) Error() string { return fmt.Sprintf("audit: entry %d: %v", e.Index, e.Err) }
func (e *EntryError) Unwrap() error { return e.Err }

// LeafHash is the RFC 6962 leaf hash of an entry.
func LeafHash(entry []byte) []byte { return hashLeaf(entry) }

// Scan verifies the tree of cp (a verified checkpoint) that r reads, entry by entry and in
// order: check (if not nil) is called with each entry before its hash is compared, and its
// error names that entry (*EntryError); fn (if not nil) is called with each entry whose hash
// matched, and its error is returned as it is. Every stored tile hash is recomputed from the
// entries, and the tree must hash to cp's root (ErrRootMismatch): fn sees entries before the
// root is checked, so only a nil error from Scan says that what fn saw is the log.
func Scan(ctx context.Context, r ObjectReader, cp *Checkpoint, check, fn func(index uint64, entry []byte) error) error {
	t := newTree(r, cp.Size)
	rng := rf.NewEmptyRange(0)
	var cur [][][]byte // recomputed hashes of the tile being filled at each level >= 1
	// cmp compares recomputed hashes with the stored tile index at level L.
	cmp := func(L int, index uint64, hs [][]byte) error {
		stored, err := t.hashTile(ctx, L, index)
		if err != nil {
			return &EntryError{Index: index * TileWidth << (TileHeight * uint(L)), Err: err}
		}
		for i := range hs {
			if !bytes.Equal(hs[i], stored[i]) {
				first := (index*TileWidth + uint64(i)) << (TileHeight * uint(L))
				return &EntryError{Index: first, Err: fmt.Errorf("hash %d of %s does not match the entries below it", i, TilePath(L, index, len(stored)))}
			}
		}
		return nil
	}
	var push func(L int, pos uint64, h []byte) error
	push = func(L int, pos uint64, h []byte) error {
		for len(cur) <= L {
			cur = append(cur, nil)
		}
		cur[L] = append(cur[L], h)
		if len(cur[L]) < TileWidth {
			return nil
		}
		if err := cmp(L, pos/TileWidth, cur[L]); err != nil {
			return err
		}
		r := subtreeRoot(cur[L])
		cur[L] = nil
		return push(L+1, pos/TileWidth, r)
	}
	for b := uint64(0); b*TileWidth < cp.Size; b++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		raw, w, p, err := t.bundle(ctx, b)
		if err != nil {
			return &EntryError{Index: b * TileWidth, Err: err}
		}
		// A bundle that does not parse is still checked entry by entry first, so that a
		// removed or reordered record is named rather than the end of the bundle.
		es, perr := ParseBundle(raw, w)
		stored, err := t.hashTile(ctx, 0, b)
		if err != nil {
			return &EntryError{Index: b * TileWidth, Err: err}
		}
		for i, e := range es {
			idx := b*TileWidth + uint64(i)
			if check != nil {
				if err := check(idx, e); err != nil {
					return &EntryError{Index: idx, Err: err}
				}
			}
			h := hashLeaf(e)
			if !bytes.Equal(h, stored[i]) {
				return &EntryError{Index: idx, Err: fmt.Errorf("does not match hash %d of %s", i, TilePath(0, b, w))}
			}
			if err := rng.Append(h, nil); err != nil {
				return err
			}
			if fn != nil {
				if err := fn(idx, e); err != nil {
					return err
				}
			}
		}
		if perr != nil {
			return &EntryError{Index: b*TileWidth + uint64(len(es)), Err: fmt.Errorf("%s: %v", p, perr)}
		}
		if w == TileWidth {
			if err := push(1, b, subtreeRoot(stored)); err != nil {
				return err
			}
		}
	}
	for L := 1; L < len(cur); L++ {
		if len(cur[L]) == 0 {
			continue
		}
		if want := int(levelCount(L, cp.Size) % TileWidth); want != len(cur[L]) {
			return fmt.Errorf("audit: level %d holds %d hashes, want %d", L, len(cur[L]), want)
		}
		if err := cmp(L, levelCount(L, cp.Size)/TileWidth, cur[L]); err != nil {
			return err
		}
	}
	root := EmptyRoot()
	if cp.Size > 0 {
		var err error
		if root, err = rng.GetRootHash(nil); err != nil {
			return err
		}
	}
	if !bytes.Equal(root, cp.Root) {
		return fmt.Errorf("audit: %w: size %d", ErrRootMismatch, cp.Size)
	}
	return nil
}

// Consistent checks, with a consistency proof built from the tiles r reads (those of cp's
// tree), that the tree of cp extends the tree of old (both checkpoints already verified);
// otherwise the error wraps ErrInconsistent.
func Consistent(ctx context.Context, r ObjectReader, old, cp *Checkpoint) error {
	_, err := ConsistencyProof(ctx, r, old, cp)
	return err
}

// ConsistencyProof builds the consistency proof from old to cp out of the tiles r reads,
// checks it (a failure wraps ErrInconsistent) and returns it (empty when there is nothing to
// prove: old is empty or the same size).
func ConsistencyProof(ctx context.Context, r ObjectReader, old, cp *Checkpoint) ([][]byte, error) {
	if old.Size > cp.Size {
		return nil, fmt.Errorf("audit: %w: size %d is smaller than the %d seen before", ErrInconsistent, cp.Size, old.Size)
	}
	t := newTree(r, cp.Size)
	var hs [][]byte
	if old.Size != 0 && old.Size != cp.Size {
		nodes, err := proof.Consistency(old.Size, cp.Size)
		if err != nil {
			return nil, err
		}
		if hs, err = fetchProof(ctx, t, nodes); err != nil {
			return nil, err
		}
	}
	if old.Size == 0 {
		if !bytes.Equal(old.Root, EmptyRoot()) {
			return nil, fmt.Errorf("audit: %w: empty tree with a non-empty root", ErrInconsistent)
		}
		return [][]byte{}, nil
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, cp.Size, hs, old.Root, cp.Root); err != nil {
		return nil, fmt.Errorf("audit: %w: size %d to %d: %v", ErrInconsistent, old.Size, cp.Size, err)
	}
	if hs == nil {
		hs = [][]byte{}
	}
	return hs, nil
}

// Entry reads entry index of the tree of cp. A bundle that does not hold it is an *EntryError.
func Entry(ctx context.Context, r ObjectReader, cp *Checkpoint, index uint64) ([]byte, error) {
	if index >= cp.Size {
		return nil, fmt.Errorf("audit: index %d is outside the log of size %d", index, cp.Size)
	}
	raw, width, p, err := newTree(r, cp.Size).bundle(ctx, index/TileWidth)
	if err != nil {
		return nil, &EntryError{Index: index, Err: err}
	}
	es, err := ParseBundle(raw, width)
	if err != nil && uint64(len(es)) <= index%TileWidth {
		return nil, &EntryError{Index: index/TileWidth*TileWidth + uint64(len(es)), Err: fmt.Errorf("%s: %v", p, err)}
	}
	return es[index%TileWidth], nil
}

// InclusionProof builds the inclusion proof of entry (entry index of the tree of cp) out of
// the tiles r reads and checks it against cp's root; a failure is an *EntryError.
func InclusionProof(ctx context.Context, r ObjectReader, cp *Checkpoint, index uint64, entry []byte) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, cp.Size)
	if err != nil {
		return nil, err
	}
	hs, err := fetchProof(ctx, newTree(r, cp.Size), nodes)
	if err != nil {
		return nil, err
	}
	if err := VerifyInclusion(index, cp.Size, hashLeaf(entry), hs, cp.Root); err != nil {
		return nil, &EntryError{Index: index, Err: fmt.Errorf("not included under the checkpoint root: %v", err)}
	}
	if hs == nil {
		hs = [][]byte{}
	}
	return hs, nil
}

// VerifyInclusion checks an RFC 6962 inclusion proof of the leaf hash at index in a tree of
// the given size and root.
func VerifyInclusion(index, size uint64, leafHash []byte, hs [][]byte, root []byte) error {
	return proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leafHash, hs, root)
}

func fetchProof(ctx context.Context, t *tree, nodes proof.Nodes) ([][]byte, error) {
	hs := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, err := t.node(ctx, id.Level, id.Index)
		if err != nil {
			return nil, fmt.Errorf("audit: proof node %d/%d: %w", id.Level, id.Index, err)
		}
		hs[i] = h
	}
	return nodes.Rehash(hs, hashChildren)
}
