// Package revoke holds the security team's revocations: platforms (chip ID, PPID), images
// (launch measurement, SNP image ID), TCB levels and advisories that trustd must no longer
// trust, whatever the policy and the collateral say.
//
// Revocations live in a Store shared by every replica (PostgreSQL when configured, otherwise a
// file in the data directory) and survive restarts. Each replica holds a Set: a copy of the
// store it refreshes every poll interval and checks on every attestation and every release, so
// a revocation made on one replica stops releases on all of them within one interval. A Set that
// cannot refresh for longer than its maximum staleness fails closed: every check is refused
// until the store answers again.
package revoke

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/schemes"
	"github.com/medicus-cloud/trust/internal/every"
	"github.com/medicus-cloud/trust/policies"
)

// Kind is what a revocation matches.
type Kind string

// The kinds of revocation.
const (
	// Measurement matches the launch measurement (SNP MEASUREMENT, TDX MRTD, SGX MRENCLAVE) or
	// any further measurement (rtmr0..3, mrseam, mrsigner) with this hex value.
	Measurement Kind = "measurement"
	// Image matches configuration identities of an image: SNP image_id or family_id, TDX
	// mrconfigid, with this hex value.
	Image Kind = "image"
	// TCB matches a TCB level: value "component:N" matches claims whose TCB component (for
	// example snp, microcode, tdx_module_svn, pce_svn) is N or lower.
	TCB Kind = "tcb"
	// Advisory matches claims with this outstanding advisory (for example INTEL-SA-00837).
	Advisory Kind = "advisory"
	// ChipID matches an SEV-SNP chip (platform chip_id, hex).
	ChipID Kind = "chip_id"
	// PPID matches an Intel platform by its PCK certificate's PPID (hex).
	PPID Kind = "ppid"
)

// Kinds lists every kind.
var Kinds = []Kind{Measurement, Image, TCB, Advisory, ChipID, PPID}

// Revocation is one entry.
type Revocation struct {
	ID    string `json:"id"`
	Kind  Kind   `json:"kind"`
	Value string `json:"value"`
	// TEE optionally limits the revocation to one TEE type (a hardware type, sev-snp or tdx,
	// also covers the schemes built on it: see Matches).
	TEE     string    `json:"tee,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Created time.Time `json:"created"`
	// By names who revoked (the admin caller).
	By string `json:"by,omitempty"`
}

var (
	hexRE      = regexp.MustCompile(`^[0-9a-f]{2,256}$`)
	advisoryRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	tcbRE      = regexp.MustCompile(`^([a-z0-9_]{1,32}):([0-9]{1,20})$`)
	idRE       = regexp.MustCompile(`^[0-9a-f]{16,64}$`)
)

// MaxReason bounds the reason's length.
const MaxReason = 512

// Normalize lowercases hex values and checks r; the error names the field.
func (r *Revocation) Normalize() error {
	if !slices.Contains(Kinds, r.Kind) {
		return fmt.Errorf("kind: %q, want one of %v", r.Kind, Kinds)
	}
	r.Value = strings.TrimSpace(r.Value)
	switch r.Kind {
	case Measurement, Image, ChipID, PPID:
		r.Value = strings.ToLower(r.Value)
		if !hexRE.MatchString(r.Value) || len(r.Value)%2 != 0 {
			return fmt.Errorf("value: a %s is 1 to 128 bytes of hex", r.Kind)
		}
	case Advisory:
		if !advisoryRE.MatchString(r.Value) {
			return errors.New("value: an advisory ID is 1-64 characters of [A-Za-z0-9._-]")
		}
	case TCB:
		m := tcbRE.FindStringSubmatch(r.Value)
		if m == nil {
			return errors.New(`value: a TCB level is "component:N", for example snp:20`)
		}
		if _, err := strconv.ParseUint(m[2], 10, 64); err != nil {
			return fmt.Errorf("value: TCB level %q does not fit 64 bits", m[2])
		}
	}
	if r.TEE != "" {
		t, err := schemes.ParseTEE(r.TEE)
		if err != nil {
			return fmt.Errorf("tee: %v", err)
		}
		r.TEE = string(t)
	}
	if len(r.Reason) > MaxReason {
		return fmt.Errorf("reason: %d bytes, at most %d", len(r.Reason), MaxReason)
	}
	if r.ID != "" && !idRE.MatchString(r.ID) {
		return errors.New("id: 16 to 64 lowercase hex digits")
	}
	return nil
}

// NewID returns a random revocation ID.
func NewID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Matches reports whether r applies to claims c. A revocation scoped to a hardware TEE also
// applies to the schemes built on it (sev-snp to azure-snp, tdx to azure-tdx): their claims
// carry that hardware's chip, TCB and launch measurement, and a chip revoked by chip_id must not
// come back behind Azure's paravisor. One scoped to such a scheme applies to it alone.
func (r *Revocation) Matches(c *attest.Claims) bool {
	if c == nil || (r.TEE != "" && r.TEE != string(c.TEE) && r.TEE != string(schemes.Hardware(c.TEE))) {
		return false
	}
	switch r.Kind {
	case Measurement:
		if c.Measurement.String() == r.Value {
			return true
		}
		for _, m := range c.Measurements {
			if m.String() == r.Value {
				return true
			}
		}
	case Image:
		for _, k := range []string{"image_id", "family_id", "mrconfigid"} {
			if v, ok := c.Config[k]; ok && v.String() == r.Value {
				return true
			}
		}
	case TCB:
		m := tcbRE.FindStringSubmatch(r.Value)
		if m == nil {
			return false
		}
		n, _ := strconv.ParseUint(m[2], 10, 64)
		if v, ok := c.TCB[m[1]]; ok && v <= n {
			return true
		}
	case Advisory:
		return slices.Contains(c.Advisories, r.Value)
	case ChipID:
		return strings.EqualFold(c.Platform["chip_id"], r.Value)
	case PPID:
		return strings.EqualFold(c.Platform["ppid"], r.Value)
	}
	return false
}

// Store keeps revocations durably. List returns them oldest first.
type Store interface {
	Add(ctx context.Context, r Revocation) error
	List(ctx context.Context) ([]Revocation, error)
}

// ErrStale is returned by Set.Check when the set could not be refreshed for longer than its
// maximum staleness; it wraps attest.ErrUnavailable, so that the service answers Unavailable.
var ErrStale = fmt.Errorf("%w: revocation list", attest.ErrUnavailable)

// Defaults of a Set.
const (
	DefaultPollInterval = 2 * time.Second
	DefaultMaxStale     = 30 * time.Second
)

// Options configure a Set.
type Options struct {
	// PollInterval is how often Run refreshes from the store; default DefaultPollInterval.
	PollInterval time.Duration
	// MaxStale is how long checks keep using the last list read when the store does not answer;
	// past it they fail closed. Default DefaultMaxStale.
	MaxStale time.Duration
	// OnError observes failed refreshes (for logs); nil ignores them.
	OnError func(error)
	Now     func() time.Time
}

// Set is a replica's view of the store.
type Set struct {
	store Store
	o     Options

	mu       sync.RWMutex
	list     []Revocation
	loadedAt time.Time
}

// Open reads the store once and returns its Set; an unreadable store is an error, so that a
// replica never starts without its revocations.
func Open(ctx context.Context, store Store, o Options) (*Set, error) {
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.MaxStale <= 0 {
		o.MaxStale = DefaultMaxStale
	}
	if o.MaxStale < o.PollInterval {
		return nil, fmt.Errorf("revoke: max staleness %v below the poll interval %v", o.MaxStale, o.PollInterval)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Set{store: store, o: o}
	if err := s.Refresh(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Refresh reads the store now.
func (s *Set) Refresh(ctx context.Context) error {
	list, err := s.store.List(ctx)
	if err != nil {
		return fmt.Errorf("revoke: reading revocations: %w", err)
	}
	s.mu.Lock()
	s.list, s.loadedAt = list, s.o.Now()
	s.mu.Unlock()
	return nil
}

// Run refreshes every poll interval until ctx ends.
func (s *Set) Run(ctx context.Context) { every.Run(ctx, s.o.PollInterval, s.Refresh, s.o.OnError) }

// Add stores r (filling its ID and time) and refreshes, so this replica enforces it at once.
func (s *Set) Add(ctx context.Context, r Revocation) (Revocation, error) {
	if r.ID == "" {
		r.ID = NewID()
	}
	if r.Created.IsZero() {
		r.Created = s.o.Now().UTC()
	}
	if err := r.Normalize(); err != nil {
		return Revocation{}, err
	}
	if err := s.store.Add(ctx, r); err != nil {
		return Revocation{}, fmt.Errorf("revoke: storing: %w", err)
	}
	return r, s.Refresh(ctx)
}

// List returns the revocations of the last refresh and when it happened.
func (s *Set) List() ([]Revocation, time.Time) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.list), s.loadedAt
}

// Check refuses claims that a revocation matches (a *policies.Denial naming claim
// "revocation"), and everything once the list is older than the maximum staleness (ErrStale).
func (s *Set) Check(c *attest.Claims) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if age := s.o.Now().Sub(s.loadedAt); age > s.o.MaxStale {
		return fmt.Errorf("%w: not refreshed for %v (at most %v)", ErrStale, age.Round(time.Second), s.o.MaxStale)
	}
	for i := range s.list {
		r := &s.list[i]
		if r.Matches(c) {
			return &policies.Denial{Claim: "revocation", Seen: fmt.Sprintf("%s %s revoked (revocation %s)", r.Kind, r.Value, r.ID),
				Expected: "evidence from a platform, image and TCB the security team has not revoked"}
		}
	}
	return nil
}
