// Package breakglass keeps the two-person requests of trustd's admin API: emergency releases
// outside consent (break-glass) and crypto-shredding of a key. One administrator requests,
// a different one approves; an approval is accepted once, and a request that nobody approves
// within PendingTTL lapses. A break-glass stays listed until someone other than its requester
// and approver reviews it.
//
// Entries live in a private state file (package statefile): the reason of a break-glass is
// operator-written text that may by mistake name a patient, so it stays in this admin-only
// state and the public audit log records a keyed digest of it.
package breakglass

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/medicus-cloud/trust/internal/statefile"
)

// Kinds of request.
const (
	KindBreakGlass = "break-glass"
	KindShred      = "shred"
)

// Review outcomes.
const (
	Justified   = "justified"
	Unjustified = "unjustified"
)

// Limits.
const (
	// MaxDuration bounds every break-glass window, whatever was asked.
	MaxDuration = time.Hour
	// PendingTTL is how long a request waits for its approval.
	PendingTTL = time.Hour
	// MaxReason bounds a reason, in bytes.
	MaxReason = 1024
	// MaxOpen bounds the requests neither approved nor lapsed, against a flood.
	MaxOpen = 256
)

// Errors, each a distinct status at the API.
var (
	ErrNotFound        = errors.New("no such request")                                               // NotFound
	ErrSelfApproval    = errors.New("the requester cannot approve their own request")                // PermissionDenied
	ErrAlreadyApproved = errors.New("request already approved: a replayed approval")                 // FailedPrecondition
	ErrLapsed          = errors.New("request lapsed without approval")                               // FailedPrecondition
	ErrNotApproved     = errors.New("break-glass not approved")                                      // PermissionDenied
	ErrExpired         = errors.New("break-glass window over")                                       // PermissionDenied
	ErrScope           = errors.New("break-glass was approved for another tenant or key")            // PermissionDenied
	ErrReviewed        = errors.New("already reviewed")                                              // FailedPrecondition
	ErrSelfReview      = errors.New("the requester or approver cannot review their own break-glass") // PermissionDenied
	ErrInvalid         = errors.New("invalid request")                                               // InvalidArgument
	ErrTooMany         = errors.New("too many open requests")                                        // ResourceExhausted
)

// Entry is one request.
type Entry struct {
	ID          string        `json:"id"`
	Kind        string        `json:"kind"`
	Tenant      string        `json:"tenant,omitempty"`
	KeyName     string        `json:"key_name"`
	Reason      string        `json:"reason,omitempty"`
	Duration    time.Duration `json:"duration,omitempty"`
	RequestedBy string        `json:"requested_by"`
	RequestedAt time.Time     `json:"requested_at"`
	ApprovedBy  string        `json:"approved_by,omitempty"`
	ApprovedAt  time.Time     `json:"approved_at,omitzero"`
	Releases    uint64        `json:"releases,omitempty"`
	Outcome     string        `json:"outcome,omitempty"`
	ReviewedBy  string        `json:"reviewed_by,omitempty"`
	ReviewedAt  time.Time     `json:"reviewed_at,omitzero"`
}

// Approved reports whether the entry was approved.
func (e *Entry) Approved() bool { return e.ApprovedBy != "" }

// Expires is the end of an approved break-glass window, capped at max (the grant's policy) and
// MaxDuration.
func (e *Entry) Expires(max time.Duration) time.Time {
	d := min(e.Duration, MaxDuration)
	if max > 0 {
		d = min(d, max)
	}
	return e.ApprovedAt.Add(d)
}

// Store holds the entries in a state file.
type Store struct {
	mu      sync.Mutex
	path    string
	entries map[string]*Entry
}

type state struct {
	Entries []*Entry `json:"entries"`
}

// Open loads the store at path.
func Open(path string) (*Store, error) {
	var st state
	if err := statefile.Load(path, &st); err != nil {
		return nil, fmt.Errorf("break-glass state: %w", err)
	}
	s := &Store{path: path, entries: map[string]*Entry{}}
	for _, e := range st.Entries {
		s.entries[e.ID] = e
	}
	return s, nil
}

// save persists the entries with next applied; on failure the change is undone by the caller.
func (s *Store) save() error {
	st := state{}
	for _, e := range s.entries {
		st.Entries = append(st.Entries, e)
	}
	sort.Slice(st.Entries, func(i, j int) bool { return st.Entries[i].ID < st.Entries[j].ID })
	return statefile.Save(s.path, st)
}

// mutate applies f to a copy of entry id (nil for a new one) and persists it; the store
// changes only if saving succeeds.
func (s *Store) mutate(id string, f func(e *Entry) error) (*Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.entries[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	e := *old
	if err := f(&e); err != nil {
		return nil, err
	}
	s.entries[id] = &e
	if err := s.save(); err != nil {
		s.entries[id] = old
		return nil, err
	}
	c := e
	return &c, nil
}

// CheckReason validates a break-glass reason: 10 to MaxReason bytes of UTF-8 text.
func CheckReason(r string) error {
	if !utf8.ValidString(r) || len(r) < 10 || len(r) > MaxReason {
		return fmt.Errorf("%w: reason must be 10 to %d bytes of UTF-8", ErrInvalid, MaxReason)
	}
	return nil
}

// Request stores a new request by who and returns it. e.ID, RequestedBy and RequestedAt are
// set here.
func (s *Store) Request(e Entry, who string, now time.Time) (*Entry, error) {
	if e.Kind != KindBreakGlass && e.Kind != KindShred {
		return nil, fmt.Errorf("%w: kind %q", ErrInvalid, e.Kind)
	}
	if e.Kind == KindBreakGlass {
		if err := CheckReason(e.Reason); err != nil {
			return nil, err
		}
		if e.Duration <= 0 || e.Duration > MaxDuration {
			e.Duration = MaxDuration
		}
	}
	if e.ID == "" {
		e.ID = NewID(e.Kind)
	}
	e.RequestedBy, e.RequestedAt = who, now.UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	open := 0
	for _, x := range s.entries {
		if !x.Approved() && now.Sub(x.RequestedAt) < PendingTTL {
			open++
		}
	}
	if open >= MaxOpen {
		return nil, ErrTooMany
	}
	s.entries[e.ID] = &e
	if err := s.save(); err != nil {
		delete(s.entries, e.ID)
		return nil, err
	}
	c := e
	return &c, nil
}

// NewID returns a fresh request ID: "br-" or "sh-" and 16 hex digits.
func NewID(kind string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return kind[:2] + "-" + hex.EncodeToString(b)
}

// Get returns a copy of entry id.
func (s *Store) Get(id string) (*Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	c := *e
	return &c, nil
}

// Approve approves request id of kind by who: a different identity than the requester, once,
// within PendingTTL. act, when not nil, runs once the approval is admissible and before it is
// stored: if act fails (a shred of an unknown key), nothing changes.
func (s *Store) Approve(id, kind, who string, now time.Time, act func(e *Entry) error) (*Entry, error) {
	return s.mutate(id, func(e *Entry) error {
		switch {
		case e.Kind != kind:
			return fmt.Errorf("%w: %s is a %s request", ErrNotFound, id, e.Kind)
		case e.Approved():
			return ErrAlreadyApproved
		case e.RequestedBy == who:
			return ErrSelfApproval
		case now.Sub(e.RequestedAt) >= PendingTTL:
			return ErrLapsed
		}
		if act != nil {
			if err := act(e); err != nil {
				return err
			}
		}
		e.ApprovedBy, e.ApprovedAt = who, now.UTC()
		return nil
	})
}

// Use checks that break-glass id is approved for tenant and key and open now under the grant's
// max duration, and counts the release.
func (s *Store) Use(id, tenant, keyName string, max time.Duration, now time.Time) (*Entry, error) {
	return s.mutate(id, func(e *Entry) error {
		switch {
		case e.Kind != KindBreakGlass:
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		case !e.Approved():
			return ErrNotApproved
		case e.Tenant != tenant || e.KeyName != keyName:
			return ErrScope
		case e.Outcome != "":
			return fmt.Errorf("%w: reviewed break-glass is closed", ErrExpired)
		case !now.Before(e.Expires(max)):
			return ErrExpired
		}
		e.Releases++
		return nil
	})
}

// Review closes break-glass id with outcome, by who: neither its requester nor its approver.
func (s *Store) Review(id, outcome, who string, now time.Time) (*Entry, error) {
	if outcome != Justified && outcome != Unjustified {
		return nil, fmt.Errorf("%w: outcome %q, want %s or %s", ErrInvalid, outcome, Justified, Unjustified)
	}
	return s.mutate(id, func(e *Entry) error {
		switch {
		case e.Kind != KindBreakGlass:
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		case e.Outcome != "":
			return ErrReviewed
		case who == e.RequestedBy || who == e.ApprovedBy:
			return ErrSelfReview
		}
		e.Outcome, e.ReviewedBy, e.ReviewedAt = outcome, who, now.UTC()
		return nil
	})
}

// List returns the break-glass entries not yet reviewed (all: every one), oldest first.
func (s *Store) List(all bool) []*Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Entry
	for _, e := range s.entries {
		if e.Kind == KindBreakGlass && (all || e.Outcome == "") {
			c := *e
			out = append(out, &c)
		}
	}
	slices.SortFunc(out, func(a, b *Entry) int { return a.RequestedAt.Compare(b.RequestedAt) })
	return out
}
