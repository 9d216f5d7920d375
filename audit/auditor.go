package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// The auditor side: functions that check a log offline, given only its tiles (a directory or an
// HTTP mirror), a checkpoint and the note verifier key. trustctl's "audit" commands call them.

// Errors of the auditor functions, besides ErrCheckpoint and *EntryError.
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

// Source says where a log is and how to trust it.
type Source struct {
	// Log is an http(s) URL of the log root, the Dir of OpenLocal, or its "log" directory.
	Log string
	// Key is the note verifier key of the log (Log.VerifierKey), obtained out of band.
	Key string
	// Client fetches from URLs; default http.DefaultClient.
	Client *http.Client
}

func (s Source) open(ctx context.Context) (source, *Checkpoint, error) {
	src, cp, _, err := s.openRaw(ctx)
	return src, cp, err
}

// openRaw also returns the signed checkpoint as read.
func (s Source) openRaw(ctx context.Context) (source, *Checkpoint, []byte, error) {
	if s.Key == "" {
		return nil, nil, nil, errors.New("audit: no verifier key given")
	}
	src, err := openSource(s.Log, s.Client)
	if err != nil {
		return nil, nil, nil, err
	}
	b, err := src.get(ctx, "checkpoint")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("audit: checkpoint: %w", err)
	}
	cp, err := OpenCheckpoint(b, s.Key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("audit: %w", err)
	}
	return src, cp, b, nil
}

// VerifyOptions configure Verify.
type VerifyOptions struct {
	Source
	// Trusted is an optional checkpoint seen before (for example the witness state): the log
	// must have grown from it.
	Trusted []byte
}

// Verify checks a whole log: the checkpoint signature, that every entry is a canonical record,
// that every stored tile hash is recomputed from the entries, that the tree hashes to the
// signed root and, if given, that the log is consistent with an older checkpoint. It writes
// a one-line summary to w and returns the verified checkpoint, or an error naming the first bad
// entry (*EntryError) or what else is wrong.
func Verify(ctx context.Context, w io.Writer, o VerifyOptions) (*Checkpoint, error) {
	src, cp, err := o.open(ctx)
	if err != nil {
		return nil, err
	}
	if err := scan(ctx, src, cp, nil); err != nil {
		return nil, err
	}
	if o.Trusted != nil {
		old, err := OpenCheckpoint(o.Trusted, o.Key)
		if err != nil {
			return nil, fmt.Errorf("audit: trusted %w", err)
		}
		if err := consistent(ctx, newTree(src, cp.Size), old, cp); err != nil {
			return nil, err
		}
	}
	_, err = fmt.Fprintf(w, "ok: %s size %d root %s: signature, %d records and all tiles verified\n",
		cp.Origin, cp.Size, base64.StdEncoding.EncodeToString(cp.Root), cp.Size)
	return cp, err
}

// scan verifies the tree of cp entry by entry, calling fn (if not nil) for each record in order.
func scan(ctx context.Context, src source, cp *Checkpoint, fn func(uint64, *Record) error) error {
	t := newTree(src, cp.Size)
	rng := rf.NewEmptyRange(0)
	var cur [][][]byte // recomputed hashes of the tile being filled at each level >= 1
	// check compares recomputed hashes with the stored tile index at level L.
	check := func(L int, index uint64, hs [][]byte) error {
		stored, err := t.hashTile(ctx, L, index)
		if err != nil {
			return &EntryError{Index: index * tileWidth << (tileHeight * uint(L)), Err: err}
		}
		for i := range hs {
			if !bytes.Equal(hs[i], stored[i]) {
				first := (index*tileWidth + uint64(i)) << (tileHeight * uint(L))
				return &EntryError{Index: first, Err: fmt.Errorf("hash %d of %s does not match the entries below it", i, tilePath(L, index, len(stored)))}
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
		if len(cur[L]) < tileWidth {
			return nil
		}
		if err := check(L, pos/tileWidth, cur[L]); err != nil {
			return err
		}
		r := subtreeRoot(cur[L])
		cur[L] = nil
		return push(L+1, pos/tileWidth, r)
	}
	for b := uint64(0); b*tileWidth < cp.Size; b++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		raw, w, p, err := t.bundle(ctx, b)
		if err != nil {
			return &EntryError{Index: b * tileWidth, Err: err}
		}
		// A bundle that does not parse is still checked entry by entry first, so that a
		// removed or reordered record is named rather than the end of the bundle.
		es, perr := parseBundle(raw, w)
		stored, err := t.hashTile(ctx, 0, b)
		if err != nil {
			return &EntryError{Index: b * tileWidth, Err: err}
		}
		for i, e := range es {
			idx := b*tileWidth + uint64(i)
			r, err := ParseRecord(e)
			if err != nil {
				return &EntryError{Index: idx, Err: err}
			}
			h := hashLeaf(e)
			if !bytes.Equal(h, stored[i]) {
				return &EntryError{Index: idx, Err: fmt.Errorf("does not match hash %d of %s", i, tilePath(0, b, w))}
			}
			if err := rng.Append(h, nil); err != nil {
				return err
			}
			if fn != nil {
				if err := fn(idx, r); err != nil {
					return err
				}
			}
		}
		if perr != nil {
			return &EntryError{Index: b*tileWidth + uint64(len(es)), Err: fmt.Errorf("%s: %v", p, perr)}
		}
		if w == tileWidth {
			if err := push(1, b, subtreeRoot(stored)); err != nil {
				return err
			}
		}
	}
	for L := 1; L < len(cur); L++ {
		if len(cur[L]) == 0 {
			continue
		}
		if want := int(levelCount(L, cp.Size) % tileWidth); want != len(cur[L]) {
			return fmt.Errorf("audit: level %d holds %d hashes, want %d", L, len(cur[L]), want)
		}
		if err := check(L, levelCount(L, cp.Size)/tileWidth, cur[L]); err != nil {
			return err
		}
	}
	root := emptyRoot()
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

// consistent checks that old is an ancestor of cp using a consistency proof built from t, the
// tiles of cp's tree.
func consistent(ctx context.Context, t *tree, old, cp *Checkpoint) error {
	if old.Size > cp.Size {
		return fmt.Errorf("audit: %w: size %d is smaller than the %d seen before", ErrInconsistent, cp.Size, old.Size)
	}
	hs, err := consistencyProof(ctx, t, old.Size, cp.Size)
	if err != nil {
		return err
	}
	if old.Size == 0 {
		if !bytes.Equal(old.Root, emptyRoot()) {
			return fmt.Errorf("audit: %w: empty tree with a non-empty root", ErrInconsistent)
		}
		return nil
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, cp.Size, hs, old.Root, cp.Root); err != nil {
		return fmt.Errorf("audit: %w: size %d to %d: %v", ErrInconsistent, old.Size, cp.Size, err)
	}
	return nil
}

func consistencyProof(ctx context.Context, t *tree, size1, size2 uint64) ([][]byte, error) {
	if size1 == 0 || size1 == size2 {
		return nil, nil
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	return fetchProof(ctx, t, nodes)
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

// InclusionProof is what Prove writes: enough, with the checkpoint and the verifier key, to
// check that Record is entry Index of the log.
type InclusionProof struct {
	Origin   string          `json:"origin"`
	Size     uint64          `json:"size"`
	Root     []byte          `json:"root"`
	Index    uint64          `json:"index"`
	LeafHash []byte          `json:"leaf_hash"`
	Proof    [][]byte        `json:"proof"`
	Record   json.RawMessage `json:"record"`
}

// ProveOptions configure Prove.
type ProveOptions struct {
	Source
	Index uint64
}

// Prove writes the inclusion proof of entry o.Index in the current checkpoint as indented JSON
// (hashes in base64), after checking it.
func Prove(ctx context.Context, w io.Writer, o ProveOptions) (*InclusionProof, error) {
	src, cp, err := o.open(ctx)
	if err != nil {
		return nil, err
	}
	if o.Index >= cp.Size {
		return nil, fmt.Errorf("audit: index %d is outside the log of size %d", o.Index, cp.Size)
	}
	t := newTree(src, cp.Size)
	raw, width, p, err := t.bundle(ctx, o.Index/tileWidth)
	if err != nil {
		return nil, &EntryError{Index: o.Index, Err: err}
	}
	es, err := parseBundle(raw, width)
	if err != nil && uint64(len(es)) <= o.Index%tileWidth {
		return nil, &EntryError{Index: o.Index/tileWidth*tileWidth + uint64(len(es)), Err: fmt.Errorf("%s: %v", p, err)}
	}
	e := es[o.Index%tileWidth]
	if _, err := ParseRecord(e); err != nil {
		return nil, &EntryError{Index: o.Index, Err: err}
	}
	nodes, err := proof.Inclusion(o.Index, cp.Size)
	if err != nil {
		return nil, err
	}
	hs, err := fetchProof(ctx, t, nodes)
	if err != nil {
		return nil, err
	}
	leaf := hashLeaf(e)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, o.Index, cp.Size, leaf, hs, cp.Root); err != nil {
		return nil, &EntryError{Index: o.Index, Err: fmt.Errorf("not included under the checkpoint root: %v", err)}
	}
	ip := &InclusionProof{Origin: cp.Origin, Size: cp.Size, Root: cp.Root, Index: o.Index, LeafHash: leaf, Proof: hs, Record: e}
	if ip.Proof == nil {
		ip.Proof = [][]byte{}
	}
	return ip, writeJSON(w, ip)
}

// VerifyInclusion checks an InclusionProof against a signed checkpoint: the one it names must be
// the one given (same size and root), and the record must hash into it.
func VerifyInclusion(ip *InclusionProof, checkpoint []byte, vkey string) (*Record, error) {
	cp, err := OpenCheckpoint(checkpoint, vkey)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if cp.Size != ip.Size || !bytes.Equal(cp.Root, ip.Root) || cp.Origin != ip.Origin {
		return nil, fmt.Errorf("audit: proof is for size %d, the checkpoint has size %d", ip.Size, cp.Size)
	}
	r, err := ParseRecord(ip.Record)
	if err != nil {
		return nil, &EntryError{Index: ip.Index, Err: err}
	}
	if !bytes.Equal(hashLeaf(ip.Record), ip.LeafHash) {
		return nil, &EntryError{Index: ip.Index, Err: errors.New("leaf_hash is not the hash of the record")}
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, ip.Index, cp.Size, hashLeaf(ip.Record), ip.Proof, cp.Root); err != nil {
		return nil, &EntryError{Index: ip.Index, Err: fmt.Errorf("not included: %v", err)}
	}
	return r, nil
}

// ConsistencyProof is what Consistency writes.
type ConsistencyProof struct {
	Origin  string   `json:"origin"`
	OldSize uint64   `json:"old_size"`
	OldRoot []byte   `json:"old_root"`
	Size    uint64   `json:"size"`
	Root    []byte   `json:"root"`
	Proof   [][]byte `json:"proof"`
}

// ConsistencyOptions configure Consistency.
type ConsistencyOptions struct {
	Source
	// Old is a signed checkpoint seen before.
	Old []byte
}

// Consistency proves that the log only grew since the checkpoint o.Old: it builds the
// consistency proof to the current checkpoint, checks it and writes it as indented JSON.
// A fork or a rewrite is ErrInconsistent.
func Consistency(ctx context.Context, w io.Writer, o ConsistencyOptions) (*ConsistencyProof, error) {
	old, err := OpenCheckpoint(o.Old, o.Key)
	if err != nil {
		return nil, fmt.Errorf("audit: old %w", err)
	}
	src, cp, err := o.open(ctx)
	if err != nil {
		return nil, err
	}
	t := newTree(src, cp.Size)
	if err := consistent(ctx, t, old, cp); err != nil {
		return nil, err
	}
	hs, err := consistencyProof(ctx, t, old.Size, cp.Size)
	if err != nil {
		return nil, err
	}
	if hs == nil {
		hs = [][]byte{}
	}
	c := &ConsistencyProof{Origin: cp.Origin, OldSize: old.Size, OldRoot: old.Root, Size: cp.Size, Root: cp.Root, Proof: hs}
	return c, writeJSON(w, c)
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Export formats of Search.
const (
	FormatJSONL = "jsonl"
	FormatCSV   = "csv"
)

// SearchOptions select records; empty fields match everything.
type SearchOptions struct {
	Source
	// Measurement matches the launch measurement or any named one (hex, any case).
	Measurement string
	// Name matches any released (or requested) name, with or without the "secret:" or
	// "data_key:" prefix trustd records.
	Name    string
	Verdict string
	Event   string
	// Since (inclusive) and Until (exclusive) bound the record time.
	Since, Until time.Time
	// Format is FormatJSONL (default) or FormatCSV.
	Format string
}

func (o *SearchOptions) match(r *Record) bool {
	if o.Verdict != "" && r.Verdict != o.Verdict || o.Event != "" && r.Event != o.Event {
		return false
	}
	if !o.Since.IsZero() && r.Time.Before(o.Since) || !o.Until.IsZero() && !r.Time.Before(o.Until) {
		return false
	}
	if o.Measurement != "" {
		ok := strings.EqualFold(r.Measurement, o.Measurement)
		for _, m := range r.Measurements {
			ok = ok || strings.EqualFold(m, o.Measurement)
		}
		if !ok {
			return false
		}
	}
	if o.Name != "" {
		ok := false
		for _, n := range r.Names {
			ok = ok || n == o.Name || strings.TrimPrefix(n, "secret:") == o.Name || strings.TrimPrefix(n, "data_key:") == o.Name
		}
		if !ok {
			return false
		}
	}
	return true
}

// csvHeader is the column order of the CSV export. Maps are written as sorted key=value pairs
// joined by ";", names joined by ";".
var csvHeader = []string{"index", "time", "request_id", "event", "tee", "platform", "measurement",
	"measurements", "verdict", "reason", "policy", "policy_digest", "names", "context_digest", "caller", "token_id",
	"token_policy_digest", "count", "until"}

// Search verifies the whole log as Verify does and writes the matching records, in log order,
// as JSON Lines ({"index":N,"record":{...}} with the canonical record) or CSV. Nothing is
// written unless the log verifies.
func Search(ctx context.Context, w io.Writer, o SearchOptions) error {
	var buf bytes.Buffer
	var cw *csv.Writer
	switch o.Format {
	case "", FormatJSONL:
	case FormatCSV:
		cw = csv.NewWriter(&buf)
		if err := cw.Write(csvHeader); err != nil {
			return err
		}
	default:
		return fmt.Errorf("audit: format %q is not jsonl or csv", o.Format)
	}
	src, cp, err := o.open(ctx)
	if err != nil {
		return err
	}
	err = scan(ctx, src, cp, func(i uint64, r *Record) error {
		if !o.match(r) {
			return nil
		}
		if cw != nil {
			return cw.Write(csvRow(i, r))
		}
		rec, err := Marshal(r)
		if err != nil {
			return err
		}
		fmt.Fprintf(&buf, "{\"index\":%d,\"record\":%s}\n", i, rec)
		return nil
	})
	if err != nil {
		return err
	}
	if cw != nil {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
	}
	_, err = w.Write(buf.Bytes())
	return err
}

func csvRow(i uint64, r *Record) []string {
	row := []string{strconv.FormatUint(i, 10), r.Time.UTC().Format(time.RFC3339Nano), r.RequestID, r.Event, r.TEE,
		joinMap(r.Platform), r.Measurement, joinMap(r.Measurements), r.Verdict, r.Reason, r.Policy,
		r.PolicyDigest, strings.Join(r.Names, ";"), r.ContextDigest, r.Caller, r.TokenID, r.TokenPolicyDigest, "", ""}
	if r.Count != 0 {
		row[len(row)-2] = strconv.FormatUint(r.Count, 10)
	}
	if !r.Until.IsZero() {
		row[len(row)-1] = r.Until.UTC().Format(time.RFC3339Nano)
	}
	for j, v := range row {
		// Spreadsheets run cells that start like a formula; auditors open these files in them.
		if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
			row[j] = "'" + v
		}
	}
	return row
}

func joinMap(m map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ";")
}

// WitnessOptions configure Witness.
type WitnessOptions struct {
	Source
	// State is the file holding the last checkpoint accepted; created on first use.
	State string
	// Full also verifies every entry and tile (as Verify), not only the consistency proof.
	Full bool
}

// Witness fetches the log's current checkpoint and accepts it only if it is consistent with the
// one in o.State (the log only grew), then stores it there. The first checkpoint is taken on
// trust; start the witness early, or seed the state with a checkpoint obtained independently. A fork, a rollback or a bad
// signature is an error and leaves the state as it was. It writes one line about what it did.
func Witness(ctx context.Context, w io.Writer, o WitnessOptions) (*Checkpoint, error) {
	if o.State == "" {
		return nil, errors.New("audit: no witness state file given")
	}
	src, cp, cpBytes, err := o.openRaw(ctx)
	if err != nil {
		return nil, err
	}
	var from uint64
	prev, err := os.ReadFile(o.State)
	switch {
	case errors.Is(err, os.ErrNotExist):
		prev = nil
	case err != nil:
		return nil, fmt.Errorf("audit: witness state: %w", err)
	}
	if prev != nil {
		old, err := OpenCheckpoint(prev, o.Key)
		if err != nil {
			return nil, fmt.Errorf("audit: witness state %s: %w", o.State, err)
		}
		if err := consistent(ctx, newTree(src, cp.Size), old, cp); err != nil {
			return nil, err
		}
		from = old.Size
	}
	if o.Full {
		if err := scan(ctx, src, cp, nil); err != nil {
			return nil, err
		}
	}
	dir := filepath.Dir(o.State)
	if err := writeFileAtomic(dir, o.State, cpBytes, 0o644); err != nil {
		return nil, fmt.Errorf("audit: witness state: %w", err)
	}
	switch {
	case prev == nil:
		_, err = fmt.Fprintf(w, "ok: %s size %d: first checkpoint stored\n", cp.Origin, cp.Size)
	case from == cp.Size:
		_, err = fmt.Fprintf(w, "ok: %s unchanged at size %d\n", cp.Origin, cp.Size)
	default:
		_, err = fmt.Fprintf(w, "ok: %s grew from %d to %d consistently\n", cp.Origin, from, cp.Size)
	}
	return cp, err
}

// ParseInclusionProof reads what Prove wrote, strictly (unknown members are errors), for
// VerifyInclusion. The record is re-encoded canonically; VerifyInclusion then checks that it is
// the leaf that was proven.
func ParseInclusionProof(b []byte) (*InclusionProof, error) {
	if len(b) > maxObject {
		return nil, fmt.Errorf("audit: inclusion proof of %d bytes", len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var ip InclusionProof
	if err := dec.Decode(&ip); err != nil {
		return nil, fmt.Errorf("audit: inclusion proof: %v", err)
	}
	if dec.More() {
		return nil, errors.New("audit: inclusion proof: data after the proof")
	}
	if len(ip.Root) != hashSize || len(ip.LeafHash) != hashSize || len(ip.Proof) > 64 {
		return nil, errors.New("audit: inclusion proof: root, leaf_hash or proof of the wrong size")
	}
	for i, h := range ip.Proof {
		if len(h) != hashSize {
			return nil, fmt.Errorf("audit: inclusion proof: proof[%d] is %d bytes, want %d", i, len(h), hashSize)
		}
	}
	if ip.Record == nil {
		return nil, errors.New("audit: inclusion proof: no record")
	}
	// Prove's output is indented for people; the leaf is the canonical form of the record.
	var r Record
	rd := json.NewDecoder(bytes.NewReader(ip.Record))
	rd.DisallowUnknownFields()
	if err := rd.Decode(&r); err != nil {
		return nil, fmt.Errorf("audit: inclusion proof: record: %v", err)
	}
	c, err := Marshal(&r)
	if err != nil {
		return nil, fmt.Errorf("audit: inclusion proof: record: %w", err)
	}
	ip.Record = c
	return &ip, nil
}
