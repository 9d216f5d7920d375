// Package breakglass keeps the two-person requests of trustd's admin API: emergency releases
// outside consent (break-glass) and crypto-shredding of a key. One administrator requests,
// a different one approves; an approval is accepted once, and a request that nobody approves
// within PendingTTL lapses. A break-glass stays listed until someone other than its requester
// and approver reviews it.
//
// Entries live in a shared document (package shareddoc): a private file, or a row in the audit
// database that every replica reads. Every operation, a release's Use included, reads and
// changes the stored document under its lock, so an approval or a review made on one replica
// counts on every other at once. The reason of a break-glass is operator-written text that may
// by mistake name a patient, so it stays in this admin-only state and the public audit log
// records a keyed digest of it.
package breakglass

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/medicus-cloud/trust/internal/shareddoc"
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

// Doc holds the store's document: shareddoc.File or shareddoc.PG.
type Doc interface {
	// Read returns the document; nil when there is none yet.
	Read(ctx context.Context) ([]byte, error)
	// Update passes the current document to f under an exclusive lock and stores what f
	// returns durably, unless f fails.
	Update(ctx context.Context, f func(cur []byte) ([]byte, error)) error
}

// Store holds the entries in a shared document.
type Store struct {
	doc Doc
}

type state struct {
	Entries []*Entry `json:"entries"`
}

// opTimeout bounds one read or change of the document, an approved shred's key-store call
// included (it runs under the lock, so that a failed shred changes nothing).
const opTimeout = time.Minute

// Open opens the store in the state file at path (created on the first request).
func Open(path string) (*Store, error) {
	return OpenDoc(&shareddoc.File{Path: path})
}

// OpenDoc opens the store in doc and checks that it reads.
func OpenDoc(doc Doc) (*Store, error) {
	s := &Store{doc: doc}
	if _, err := s.read(); err != nil {
		return nil, err
	}
	return s, nil
}

// read returns the stored entries.
func (s *Store) read() (map[string]*Entry, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	b, err := s.doc.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("break-glass state: %w", err)
	}
	return parse(b)
}

func parse(b []byte) (map[string]*Entry, error) {
	var st state
	if len(b) > 0 {
		if err := json.Unmarshal(b, &st); err != nil {
			return nil, fmt.Errorf("break-glass state: %w", err)
		}
	}
	m := map[string]*Entry{}
	for _, e := range st.Entries {
		if e == nil || e.ID == "" {
			return nil, fmt.Errorf("break-glass state: an entry without an id")
		}
		m[e.ID] = e
	}
	return m, nil
}

func encode(m map[string]*Entry) ([]byte, error) {
	st := state{Entries: []*Entry{}}
	for _, e := range m {
		st.Entries = append(st.Entries, e)
	}
	sort.Slice(st.Entries, func(i, j int) bool { return st.Entries[i].ID < st.Entries[j].ID })
	b, err := json.MarshalIndent(st, "", "  ")
	return append(b, '\n'), err
}

// change applies f to the stored entries under the document's lock and stores the result; on
// any error nothing changes.
func (s *Store) change(f func(m map[string]*Entry) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	return s.doc.Update(ctx, func(cur []byte) ([]byte, error) {
		m, err := parse(cur)
		if err != nil {
			return nil, err
		}
		if err := f(m); err != nil {
			return nil, err
		}
		return encode(m)
	})
}

// mutate applies f to a copy of entry id and stores it; the store changes only if f succeeds
// and the change is stored.
func (s *Store) mutate(id string, f func(e *Entry) error) (*Entry, error) {
	var out Entry
	err := s.change(func(m map[string]*Entry) error {
		old, ok := m[id]
		if !ok {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		e := *old
		if err := f(&e); err != nil {
			return err
		}
		m[id], out = &e, e
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Merge adds to the stored document the entries of the state file at path that it lacks (an
// entry the document has wins). It moves the store from a replica's data directory to a shared
// one without losing a request, an approval or a review. A missing file is no error.
func (s *Store) Merge(path string) (added int, err error) {
	b, err := (&shareddoc.File{Path: path}).Read(context.Background())
	if err != nil || b == nil {
		return 0, err
	}
	old, err := parse(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	err = s.change(func(m map[string]*Entry) error {
		added = 0
		for id, e := range old {
			if _, ok := m[id]; !ok {
				m[id] = e
				added++
			}
		}
		return nil
	})
	return added, err
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
	err := s.change(func(m map[string]*Entry) error {
		open := 0
		for _, x := range m {
			if !x.Approved() && now.Sub(x.RequestedAt) < PendingTTL {
				open++
			}
		}
		if open >= MaxOpen {
			return ErrTooMany
		}
		if _, ok := m[e.ID]; ok {
			return fmt.Errorf("%w: request %s exists", ErrInvalid, e.ID)
		}
		c := e
		m[e.ID] = &c
		return nil
	})
	if err != nil {
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

// Get returns a copy of entry id, as stored now.
func (s *Store) Get(id string) (*Entry, error) {
	m, err := s.read()
	if err != nil {
		return nil, err
	}
	e, ok := m[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return e, nil
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

// List returns the break-glass entries not yet reviewed (all: every one), oldest first, as
// stored now.
func (s *Store) List(all bool) ([]*Entry, error) {
	m, err := s.read()
	if err != nil {
		return nil, err
	}
	var out []*Entry
	for _, e := range m {
		if e.Kind == KindBreakGlass && (all || e.Outcome == "") {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *Entry) int { return a.RequestedAt.Compare(b.RequestedAt) })
	return out, nil
}
