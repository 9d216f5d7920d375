package attest

import (
	"context"
	"errors"
	"time"
)

// Collateral freshness shared by the TEE schemes (issue 16): what a verifier reports about the
// collateral it holds, and the high-water mark that replicas share so that none accepts
// collateral older than another has seen.

// ErrOlderCollateral: collateral older than the newest seen, by this verifier or (through a
// HighWater) by another replica.
var ErrOlderCollateral = errors.New("collateral older than the newest seen")

// CollateralAge is one item of collateral a verifier holds, for metrics and `trustctl status`.
type CollateralAge struct {
	// TEE is the scheme's name ("sev-snp", "tdx", ...).
	TEE TEE
	// Platform names the platform: an FMSPC and CA for Intel, a product line for AMD.
	Platform string
	// Item is the collateral item ("crl-vcek", "tcb-info", ...).
	Item string
	// FetchedAt is when the item in use was fetched (or read from a collateral directory).
	FetchedAt time.Time
	// Issued is the item's own issue date (CRL thisUpdate, TCB info issueDate); zero if unknown.
	Issued time.Time
	// Failing is true while the last refresh failed and the last good item serves.
	Failing bool
}

// CollateralReporter is implemented by verifiers that refresh collateral.
type CollateralReporter interface {
	CollateralAges() []CollateralAge
}

// HighWater is a monotonic mark of collateral versions shared by replicas (trustd keeps it in
// PostgreSQL when configured). Advance records that key (for example "sev-snp/Milan/crl-vcek")
// was accepted at version (issued, number) and fails with an error wrapping ErrOlderCollateral
// when a newer version of key was recorded before (a number of -1 means none). Any other error
// is a failure to reach the store, and the caller fails closed.
type HighWater interface {
	Advance(ctx context.Context, key string, issued time.Time, number int64) error
}

// CollateralRefresher is implemented by verifiers that refresh collateral: trustd calls it on a
// schedule so that collateral is refreshed even while no attestation asks for it (a revocation
// then reaches outstanding tokens through ClaimsRechecker within one interval).
type CollateralRefresher interface {
	RefreshCollateral(ctx context.Context, now time.Time)
}

// ClaimsRechecker is implemented by verifiers that can tell, from claims they issued and the
// collateral they hold now, that the evidence would no longer verify (an AMD CRL that now
// revokes the chip's ASK). Every release asks it; it must not block on the network.
type ClaimsRechecker interface {
	RecheckClaims(c *Claims, now time.Time) error
}

// CollateralStore keeps fetched collateral by key (for example "tdx/90c06f000000/platform" or
// "sev-snp/Milan/crl-vcek") as named files with the time they were fetched: on disk for one
// replica, or in PostgreSQL (attest/collstore) so that replicas share one fetch. It is a cache
// and a sharing channel, never a source of trust: whatever Load returns is verified again
// (signature, validity, high-water mark) before use. Load returns nil files and no error when
// the key has nothing stored. Store may keep a newer set already stored instead of files.
// A failed Load or Store is not a verification failure: the verifier fetches itself.
type CollateralStore interface {
	Load(ctx context.Context, key string) (files map[string][]byte, fetchedAt time.Time, err error)
	Store(ctx context.Context, key string, files map[string][]byte, fetchedAt time.Time) error
}

// CollateralLeaser is implemented by stores shared by replicas: Lease takes key's refresh lease
// for ttl so that one replica fetches while the others wait for its Store. ok is false while
// another replica holds it; release gives it back early.
type CollateralLeaser interface {
	Lease(ctx context.Context, key string, ttl time.Duration) (release func(), ok bool, err error)
}

// Cross-replica single flight of SharedRefresh: the lease outlives a slow fetch; a replica that
// finds it taken waits at most SharedWait for the holder's set, polling every sharedPoll.
const (
	SharedLease = 30 * time.Second
	SharedWait  = 5 * time.Second
	sharedPoll  = 50 * time.Millisecond
)

// SharedRefresh coordinates the refresh of key among replicas that share s. When s is not a
// CollateralLeaser, or this replica takes the lease, or the store fails, it returns no files
// and a release function that the caller calls after its own fetch and Store. When another
// replica holds the lease it waits (at most SharedWait) for a set fetched after `after` (the
// fetch time of what the caller already read, zero if none) and returns it, with a no-op
// release; the caller verifies it and fetches itself when it does not verify. A wait that
// ends without a newer set returns no files: the caller fetches itself. A replica that takes the
// lease reads the store once more, and returns a set stored since `after` with the lease's
// release: one that verifies saves the fetch.
func SharedRefresh(ctx context.Context, s CollateralStore, key string, after time.Time) (files map[string][]byte, fetchedAt time.Time, release func()) {
	nop := func() {}
	l, ok := s.(CollateralLeaser)
	if !ok {
		return nil, time.Time{}, nop
	}
	rel, lead, err := l.Lease(ctx, key, SharedLease)
	if err != nil {
		return nil, time.Time{}, nop
	}
	if lead {
		// The previous holder may have stored its set between the caller's read and the lease.
		if files, at, err := s.Load(ctx, key); err == nil && files != nil && at.After(after) {
			return files, at, rel
		}
		return nil, time.Time{}, rel
	}
	wait, cancel := context.WithTimeout(ctx, SharedWait)
	defer cancel()
	t := time.NewTicker(sharedPoll)
	defer t.Stop()
	for {
		select {
		case <-wait.Done():
			return nil, time.Time{}, nop
		case <-t.C:
		}
		files, at, err := s.Load(wait, key)
		if err == nil && files != nil && at.After(after) {
			return files, at, nop
		}
	}
}

// MaxStoreSkew is how far in the future a stored fetch time may lie (replicas' clocks differ a
// little) and still count, as fetched now.
const MaxStoreSkew = time.Minute

// CredibleFetchTime is the fetch time of stored collateral (a shared row, a disk cache) as the
// freshness rules may use it. A time more than MaxStoreSkew ahead of now (a replica whose clock
// runs ahead, a tampered row) would make the collateral look freshly fetched until then: no
// replica would fetch it again, and a revocation or TCB recovery published since would be
// missed. It counts as unknown (the zero time: fetched long ago) instead; a smaller skew counts
// as now.
func CredibleFetchTime(at, now time.Time) time.Time {
	switch {
	case !at.After(now):
		return at
	case at.Sub(now) <= MaxStoreSkew:
		return now
	}
	return time.Time{}
}
