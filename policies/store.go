package policies

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medicus-cloud/trust/internal/atomicfile"
)

// StoreOptions configure a Store. The zero value (apart from Dir) is the strict one: signatures
// are required, and a Store without Keys refuses to start.
type StoreOptions struct {
	// Dir is the bundle directory.
	Dir string
	// Keys and Threshold: a bundle loads only if Threshold distinct Keys signed it (zero means
	// all of them).
	Keys      TrustKeys
	Threshold int
	// StateFile records the highest bundle version ever loaded, so that a restart cannot roll
	// back either. Signed bundles need it or State.
	StateFile string
	// State, if set, keeps the high-water mark instead of StateFile: shared by replicas (a
	// database table) so that neither a restart nor a replica on fresh storage can go lower.
	State StateStore
	// AllowUnsigned loads a directory without bundle.json as version 0 without checking
	// signatures: trustd --dev only. A directory with bundle.json is still verified when Keys are
	// configured.
	AllowUnsigned bool
	// OnReload, if set, is called by Watch after every reload attempt it makes (err nil on
	// success), so the caller can log; the Store itself never logs.
	OnReload func(b *Bundle, err error)
}

// Store holds the active bundle and replaces it atomically on Reload. Current is safe to call
// from any goroutine at any time; a failed Reload leaves the active bundle in place.
type Store struct {
	o         StoreOptions
	threshold int
	cur       atomic.Pointer[Bundle]
	mu        sync.Mutex // serializes Reload
	seen      []byte     // fingerprint of the directory at the last reload attempt
	state     StateStore // nil: no rollback state (dev mode without a state file)
}

// state is the persisted rollback state.
type state struct {
	Version uint64 `json:"version"`
	Digest  string `json:"digest"`
}

// NewStore checks the options and returns a Store with no bundle; call Reload to load one.
func NewStore(o StoreOptions) (*Store, error) {
	if o.Dir == "" {
		return nil, errors.New("policy store: no bundle directory")
	}
	s := &Store{o: o, state: o.State}
	if s.state == nil && o.StateFile != "" {
		s.state = &FileState{Path: o.StateFile}
	}
	if len(o.Keys) > 0 || !o.AllowUnsigned {
		m, err := VerifyOptions{Keys: o.Keys, Threshold: o.Threshold}.threshold()
		if err != nil {
			return nil, fmt.Errorf("policy store: %w", err)
		}
		s.threshold = m
		if s.state == nil {
			return nil, errors.New("policy store: signed bundles need a state file or state store for rollback protection")
		}
	}
	return s, nil
}

// OpenStore is NewStore followed by the first Reload, which must succeed.
func OpenStore(ctx context.Context, o StoreOptions) (*Store, error) {
	s, err := NewStore(o)
	if err != nil {
		return nil, err
	}
	if err := s.Reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Current returns the active bundle, or nil before the first successful Reload.
func (s *Store) Current() *Bundle { return s.cur.Load() }

// Reload reads, verifies and parses the bundle directory and makes it active. It refuses a
// bundle whose version is lower than the active one or the highest recorded in the state file,
// or of the same version with different content. On any error the active bundle stays.
func (s *Store) Reload(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	sd, err := readSignedDir(s.o.Dir)
	if err != nil {
		return fmt.Errorf("policy reload: %w", err)
	}
	s.seen = sd.fingerprint()
	var b *Bundle
	switch {
	case sd.manifest == nil && s.o.AllowUnsigned:
		b, err = Parse(sd.files)
	case sd.manifest != nil && s.o.AllowUnsigned && len(s.o.Keys) == 0:
		var man *manifest
		if man, err = parseManifest(sd.manifest); err == nil {
			if err = man.matches(sd.files); err == nil {
				b, err = parseBundle(sd.files, man.Version)
			}
		}
	default:
		b, err = sd.verify(s.o.Dir, s.o.Keys, s.threshold)
	}
	if err != nil {
		return fmt.Errorf("policy reload: %w", err)
	}
	if cur := s.Current(); cur != nil {
		if err := checkVersion(b, cur.Version, cur.Digest, "active bundle"); err != nil {
			return fmt.Errorf("policy reload: %w", err)
		}
	}
	if s.state != nil && b.Version > 0 {
		st, err := s.state.Load(ctx)
		if err != nil {
			return fmt.Errorf("policy reload: %w", err)
		}
		if err := checkVersion(b, st.Version, st.Digest, s.state.String()); err != nil {
			return fmt.Errorf("policy reload: %w", err)
		}
		// Persist before activating: a crash in between must never let a restart go lower.
		if b.Version > st.Version {
			rec, err := s.state.Advance(ctx, State{Version: b.Version, Digest: b.Digest})
			if err != nil {
				return fmt.Errorf("policy reload: %w", err)
			}
			// Another replica may have recorded a higher version in the meantime.
			if err := checkVersion(b, rec.Version, rec.Digest, s.state.String()); err != nil {
				return fmt.Errorf("policy reload: %w", err)
			}
		}
	}
	s.cur.Store(b)
	return nil
}

func checkVersion(b *Bundle, version uint64, dig []byte, where string) error {
	switch {
	case b.Version < version:
		return fmt.Errorf("%w: version %d is lower than version %d of the %s", ErrRollback, b.Version, version, where)
	case b.Version == version && version > 0 && len(dig) > 0 && !bytes.Equal(b.Digest, dig):
		return fmt.Errorf("%w: version %d differs from the version %d of the %s (a new bundle needs a new version)", ErrRollback, b.Version, version, where)
	}
	return nil
}

func readState(name string) (state, error) {
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return state{}, nil
	}
	if err != nil {
		return state{}, fmt.Errorf("state file: %w", err)
	}
	var st state
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		// A damaged state file could hide a rollback: refuse rather than start from zero.
		return state{}, fmt.Errorf("state file %s is damaged (%v); restore it or remove it deliberately", name, err)
	}
	return st, nil
}

func writeState(name string, st state) error {
	b, _ := json.Marshal(st)
	return atomicfile.WriteFile(name, append(b, '\n'), 0o644)
}

// fingerprint hashes everything Reload reads, to notice changes cheaply.
func (sd *signedDir) fingerprint() []byte {
	h := sha256.New()
	add := func(kind string, m map[string][]byte) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(h, "%s %q %d\n", kind, k, len(m[k]))
			h.Write(m[k])
		}
	}
	add("file", sd.files)
	add("sig", sd.sigs)
	fmt.Fprintf(h, "manifest %d\n", len(sd.manifest))
	h.Write(sd.manifest)
	return h.Sum(nil)
}

// Watch polls the directory every interval and reloads when its content changed since the last
// attempt, until ctx ends; then it returns ctx.Err(). Each attempt is reported to
// StoreOptions.OnReload. A change that fails to load is not retried until the directory changes
// again, so a bad bundle is reported once, not every interval.
func (s *Store) Watch(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return errors.New("policy store: watch interval must be positive")
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		sd, err := readSignedDir(s.o.Dir)
		if err == nil {
			s.mu.Lock()
			same := bytes.Equal(sd.fingerprint(), s.seen)
			s.mu.Unlock()
			if same {
				continue
			}
			err = s.Reload(ctx)
		} else {
			err = fmt.Errorf("policy reload: %w", err)
		}
		if s.o.OnReload != nil {
			s.o.OnReload(s.Current(), err)
		}
	}
}
