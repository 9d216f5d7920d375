// Package auditor checks an audit log offline, given only its tiles (a directory or an HTTP
// mirror), a checkpoint and the log's note verifier key: Verify, Prove, VerifyInclusion,
// Consistency, Search and Witness. They return what they found; trustctl's "audit" commands
// print it.
//
// Errors name the first bad entry (*tlog.EntryError) or the checkpoint at fault
// (tlog.ErrCheckpoint, tlog.ErrRootMismatch, tlog.ErrInconsistent).
package auditor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/tlog"
	"github.com/medicus-cloud/trust/internal/atomicfile"
)

// Source says where a log is and how to trust it.
type Source struct {
	// Log is an http(s) URL of the log root, the directory of a posix log (trustd's
	// data-dir/audit), or the directory holding its checkpoint and tiles.
	Log string
	// Key is the note verifier key of the log (VerifierKey of the log), obtained out of band.
	Key string
	// Client fetches from URLs; default a client that gives up on an object after 5 minutes.
	Client *http.Client
}

// publicDir is where a posix log keeps its public tree (audit/storage/posix).
const publicDir = "log"

// reader interprets s.Log.
func (s Source) reader() (tlog.ObjectReader, error) {
	where := s.Log
	if where == "" {
		return nil, errors.New("audit: no log given (directory or URL)")
	}
	if strings.HasPrefix(where, "https://") || strings.HasPrefix(where, "http://") {
		return tlog.HTTPReader(where, s.Client), nil
	}
	if _, err := os.Stat(filepath.Join(where, publicDir, "checkpoint")); err == nil {
		return tlog.DirReader(filepath.Join(where, publicDir)), nil
	}
	return tlog.DirReader(where), nil
}

// open reads and verifies the log's checkpoint; it also returns the signed checkpoint as read.
func (s Source) open(ctx context.Context) (tlog.ObjectReader, *tlog.Checkpoint, []byte, error) {
	if s.Key == "" {
		return nil, nil, nil, errors.New("audit: no verifier key given")
	}
	r, err := s.reader()
	if err != nil {
		return nil, nil, nil, err
	}
	b, err := r(ctx, "checkpoint")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("audit: checkpoint: %w", err)
	}
	cp, err := tlog.OpenCheckpoint(b, s.Key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("audit: %w", err)
	}
	return r, cp, b, nil
}

// checkRecord is Scan's check: every entry is a canonical record.
func checkRecord(_ uint64, e []byte) error {
	_, err := audit.ParseRecord(e)
	return err
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
// signed root and, if given, that the log is consistent with an older checkpoint. It returns
// the verified checkpoint, or an error naming the first bad entry (*tlog.EntryError) or what
// else is wrong.
func Verify(ctx context.Context, o VerifyOptions) (*tlog.Checkpoint, error) {
	r, cp, _, err := o.open(ctx)
	if err != nil {
		return nil, err
	}
	if err := tlog.Scan(ctx, r, cp, checkRecord, nil); err != nil {
		return nil, err
	}
	if o.Trusted != nil {
		old, err := tlog.OpenCheckpoint(o.Trusted, o.Key)
		if err != nil {
			return nil, fmt.Errorf("audit: trusted %w", err)
		}
		if err := tlog.Consistent(ctx, r, old, cp); err != nil {
			return nil, err
		}
	}
	return cp, nil
}

// InclusionProof is what Prove returns (and trustctl prints as JSON): enough, with the
// checkpoint and the verifier key, to check that Record is entry Index of the log.
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

// Prove builds the inclusion proof of entry o.Index in the current checkpoint and checks it.
func Prove(ctx context.Context, o ProveOptions) (*InclusionProof, error) {
	r, cp, _, err := o.open(ctx)
	if err != nil {
		return nil, err
	}
	e, err := tlog.Entry(ctx, r, cp, o.Index)
	if err != nil {
		return nil, err
	}
	if _, err := audit.ParseRecord(e); err != nil {
		return nil, &tlog.EntryError{Index: o.Index, Err: err}
	}
	hs, err := tlog.InclusionProof(ctx, r, cp, o.Index, e)
	if err != nil {
		return nil, err
	}
	return &InclusionProof{Origin: cp.Origin, Size: cp.Size, Root: cp.Root, Index: o.Index, LeafHash: tlog.LeafHash(e), Proof: hs, Record: e}, nil
}

// VerifyInclusion checks an InclusionProof against a signed checkpoint: the one it names must be
// the one given (same size and root), and the record must hash into it.
func VerifyInclusion(ip *InclusionProof, checkpoint []byte, vkey string) (*audit.Record, error) {
	cp, err := tlog.OpenCheckpoint(checkpoint, vkey)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if cp.Size != ip.Size || !bytes.Equal(cp.Root, ip.Root) || cp.Origin != ip.Origin {
		return nil, fmt.Errorf("audit: proof is for size %d, the checkpoint has size %d", ip.Size, cp.Size)
	}
	r, err := audit.ParseRecord(ip.Record)
	if err != nil {
		return nil, &tlog.EntryError{Index: ip.Index, Err: err}
	}
	leaf := tlog.LeafHash(ip.Record)
	if !bytes.Equal(leaf, ip.LeafHash) {
		return nil, &tlog.EntryError{Index: ip.Index, Err: errors.New("leaf_hash is not the hash of the record")}
	}
	if err := tlog.VerifyInclusion(ip.Index, cp.Size, leaf, ip.Proof, cp.Root); err != nil {
		return nil, &tlog.EntryError{Index: ip.Index, Err: fmt.Errorf("not included: %v", err)}
	}
	return r, nil
}

// ConsistencyProof is what Consistency returns (and trustctl prints as JSON).
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
// consistency proof to the current checkpoint and checks it. A fork or a rewrite is
// tlog.ErrInconsistent.
func Consistency(ctx context.Context, o ConsistencyOptions) (*ConsistencyProof, error) {
	old, err := tlog.OpenCheckpoint(o.Old, o.Key)
	if err != nil {
		return nil, fmt.Errorf("audit: old %w", err)
	}
	r, cp, _, err := o.open(ctx)
	if err != nil {
		return nil, err
	}
	hs, err := tlog.ConsistencyProof(ctx, r, old, cp)
	if err != nil {
		return nil, err
	}
	return &ConsistencyProof{Origin: cp.Origin, OldSize: old.Size, OldRoot: old.Root, Size: cp.Size, Root: cp.Root, Proof: hs}, nil
}

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
}

func (o *SearchOptions) match(r *audit.Record) bool {
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

// Match is a record Search found, with its index in the log.
type Match struct {
	Index  uint64
	Record *audit.Record
}

// Search verifies the whole log as Verify does and returns the matching records, in log
// order. It returns no records unless the log verifies.
func Search(ctx context.Context, o SearchOptions) ([]Match, error) {
	r, cp, _, err := o.open(ctx)
	if err != nil {
		return nil, err
	}
	var ms []Match
	_, err = scan(ctx, r, cp, func(i uint64, rec *audit.Record) error {
		if o.match(rec) {
			ms = append(ms, Match{i, rec})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ms, nil
}

// Scan reads every record of the log at s in order, after checking its checkpoint signature,
// and recomputes the tree as it goes: a record that was changed, dropped or inserted fails with
// a *tlog.EntryError before fn sees anything past it. It returns the verified checkpoint. Tools
// that replay or report on a log (policy dry-runs, records of processing) build on it.
func Scan(ctx context.Context, s Source, fn func(index uint64, r *audit.Record) error) (*tlog.Checkpoint, error) {
	r, cp, _, err := s.open(ctx)
	if err != nil {
		return nil, err
	}
	return scan(ctx, r, cp, fn)
}

// scan checks every entry is a canonical record and hands each, once its hash matched, to fn.
func scan(ctx context.Context, r tlog.ObjectReader, cp *tlog.Checkpoint, fn func(uint64, *audit.Record) error) (*tlog.Checkpoint, error) {
	var cur *audit.Record
	err := tlog.Scan(ctx, r, cp, func(_ uint64, e []byte) error {
		var err error
		cur, err = audit.ParseRecord(e)
		return err
	}, func(i uint64, _ []byte) error {
		return fn(i, cur)
	})
	if err != nil {
		return nil, err
	}
	return cp, nil
}

// WitnessOptions configure Witness.
type WitnessOptions struct {
	Source
	// State is the file holding the last checkpoint accepted; created on first use.
	State string
	// Full also verifies every entry and tile (as Verify), not only the consistency proof.
	Full bool
}

// WitnessResult is what Witness did.
type WitnessResult struct {
	// Checkpoint is the one accepted and stored.
	Checkpoint *tlog.Checkpoint
	// First: there was no state before, the checkpoint was taken on trust.
	First bool
	// From is the size of the checkpoint in the state before (0 when First).
	From uint64
}

// Witness fetches the log's current checkpoint and accepts it only if it is consistent with the
// one in o.State (the log only grew), then stores it there. The first checkpoint is taken on
// trust; start the witness early, or seed the state with a checkpoint obtained independently.
// A fork, a rollback or a bad signature is an error and leaves the state as it was.
func Witness(ctx context.Context, o WitnessOptions) (*WitnessResult, error) {
	if o.State == "" {
		return nil, errors.New("audit: no witness state file given")
	}
	r, cp, cpBytes, err := o.open(ctx)
	if err != nil {
		return nil, err
	}
	res := &WitnessResult{Checkpoint: cp}
	prev, err := os.ReadFile(o.State)
	switch {
	case errors.Is(err, os.ErrNotExist):
		res.First = true
	case err != nil:
		return nil, fmt.Errorf("audit: witness state: %w", err)
	default:
		old, err := tlog.OpenCheckpoint(prev, o.Key)
		if err != nil {
			return nil, fmt.Errorf("audit: witness state %s: %w", o.State, err)
		}
		if err := tlog.Consistent(ctx, r, old, cp); err != nil {
			return nil, err
		}
		res.From = old.Size
	}
	if o.Full {
		if err := tlog.Scan(ctx, r, cp, checkRecord, nil); err != nil {
			return nil, err
		}
	}
	if err := atomicfile.WriteFile(o.State, cpBytes, 0o644); err != nil {
		return nil, fmt.Errorf("audit: witness state: %w", err)
	}
	return res, nil
}

// ParseInclusionProof reads what Prove wrote, strictly (unknown members are errors), for
// VerifyInclusion. The record is re-encoded canonically; VerifyInclusion then checks that it is
// the leaf that was proven.
func ParseInclusionProof(b []byte) (*InclusionProof, error) {
	if len(b) > tlog.MaxObjectSize {
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
	if len(ip.Root) != tlog.HashSize || len(ip.LeafHash) != tlog.HashSize || len(ip.Proof) > 64 {
		return nil, errors.New("audit: inclusion proof: root, leaf_hash or proof of the wrong size")
	}
	for i, h := range ip.Proof {
		if len(h) != tlog.HashSize {
			return nil, fmt.Errorf("audit: inclusion proof: proof[%d] is %d bytes, want %d", i, len(h), tlog.HashSize)
		}
	}
	if ip.Record == nil {
		return nil, errors.New("audit: inclusion proof: no record")
	}
	// Prove's output is indented for people; the leaf is the canonical form of the record.
	var r audit.Record
	rd := json.NewDecoder(bytes.NewReader(ip.Record))
	rd.DisallowUnknownFields()
	if err := rd.Decode(&r); err != nil {
		return nil, fmt.Errorf("audit: inclusion proof: record: %v", err)
	}
	c, err := audit.Marshal(&r)
	if err != nil {
		return nil, fmt.Errorf("audit: inclusion proof: record: %w", err)
	}
	ip.Record = c
	return &ip, nil
}
