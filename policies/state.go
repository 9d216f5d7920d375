package policies

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync"
)

// State is the rollback high-water mark: the highest bundle version ever loaded and its digest.
type State struct {
	Version uint64
	Digest  []byte
}

// StateStore keeps the rollback high-water mark where every replica and every restart sees it:
// a file on a persistent volume for one trustd (FileState), a database table for replicas (see
// policies/pgstate). Implementations are safe for concurrent use.
type StateStore interface {
	// Load returns the recorded state; the zero State when nothing is recorded yet. Damaged
	// state is an error, never the zero State: it could hide a rollback.
	Load(ctx context.Context) (State, error)
	// Advance records st if its version is higher than the recorded one, atomically with
	// respect to other replicas, and returns the state recorded afterwards (which may be
	// higher than st when another replica got there first).
	Advance(ctx context.Context, st State) (State, error)
	// String names the store in errors ("state file /var/lib/trustd/policy-state.json").
	String() string
}

// FileState is a StateStore in one JSON file, written atomically. It serves one trustd: the
// file must be on storage that survives restarts (not a Kubernetes emptyDir).
type FileState struct {
	Path string
	mu   sync.Mutex
}

// Load implements StateStore.
func (f *FileState) Load(context.Context) (State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.load()
}

func (f *FileState) load() (State, error) {
	st, err := readState(f.Path)
	if err != nil {
		return State{}, err
	}
	d, err := hex.DecodeString(st.Digest)
	if err != nil {
		return State{}, fmt.Errorf("state file %s is damaged (digest: %v); restore it or remove it deliberately", f.Path, err)
	}
	return State{Version: st.Version, Digest: d}, nil
}

// Advance implements StateStore.
func (f *FileState) Advance(_ context.Context, st State) (State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, err := f.load()
	if err != nil {
		return State{}, err
	}
	if st.Version <= cur.Version {
		return cur, nil
	}
	if err := writeState(f.Path, state{Version: st.Version, Digest: hex.EncodeToString(st.Digest)}); err != nil {
		return State{}, fmt.Errorf("state file: %w", err)
	}
	return st, nil
}

func (f *FileState) String() string { return "state file " + f.Path }
