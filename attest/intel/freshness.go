package intel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medicus-cloud/trust/attest"
)

// Freshness of online collateral (issue 16). Intel issues TCB info, QE identity and PCK CRLs
// for 30 days; keeping them until their nextUpdate would accept a PCK Intel revoked, or a TCB a
// recovery moved to OutOfDate, for up to 30 days. Online collateral is therefore re-fetched every
// refresh interval, whatever its nextUpdate, also after a restart (the disk cache records when
// each set was fetched), one fetch per platform at a time. A failed refresh keeps the last good
// set until it is MaxAge old, then verification fails closed naming the platform. A fetched set
// is refused when it is older than the newest one seen (TCB evaluation data numbers, CRL
// issue dates) or below the configured minimum TCB evaluation data number. With a store shared
// by replicas (Freshness.Store) a replica uses a set another fetched within the interval, after
// verifying it as if it had fetched it, and one replica at a time fetches a platform's set.

// Defaults of online collateral freshness.
const (
	DefaultRefreshInterval = time.Hour
	DefaultMaxAge          = 24 * time.Hour
)

// fetchedFile records, in a cache directory, when its collateral was fetched (RFC 3339).
const fetchedFile = "fetched-at"

// ErrOlder: collateral older than the newest seen for the platform, or below the minimum TCB
// evaluation data number.
var ErrOlder = attest.ErrOlderCollateral

// Freshness configures online collateral refresh; zero fields take the defaults.
type Freshness struct {
	RefreshInterval time.Duration
	MaxAge          time.Duration
	// MinTCBEvaluationDataNumber refuses TCB info and QE identities below it (Intel raises the
	// number at each TCB recovery).
	MinTCBEvaluationDataNumber int
	// HighWater, if set, is shared by replicas: a set older than the newest any replica
	// accepted is refused (attest/highwater; PostgreSQL when configured).
	HighWater attest.HighWater
	// Store, if set, keeps fetched sets in place of the disk cache (QuoteVerifierOptions.CacheDir):
	// shared by replicas (attest/collstore), one replica fetches a platform's set per refresh
	// interval and the others load it, verifying it as if they had fetched it.
	Store attest.CollateralStore
}

func (f Freshness) withDefaults() Freshness {
	if f.RefreshInterval <= 0 {
		f.RefreshInterval = DefaultRefreshInterval
	}
	if f.MaxAge <= 0 {
		f.MaxAge = DefaultMaxAge
	}
	if f.MaxAge < f.RefreshInterval {
		f.MaxAge = f.RefreshInterval
	}
	return f
}

// NotOlder refuses next when it is older than prev (nil prev: only the minimum applies).
func NotOlder(prev, next *Verified, min int) error {
	if n := next.TCBInfo.TCBEvaluationDataNumber; n < min {
		return &FileError{FileTCBInfo, fmt.Errorf("%w: tcbEvaluationDataNumber %d below the minimum %d", ErrOlder, n, min)}
	}
	if n := next.QEIdentity.TCBEvaluationDataNumber; n < min {
		return &FileError{FileQEIdentity, fmt.Errorf("%w: tcbEvaluationDataNumber %d below the minimum %d", ErrOlder, n, min)}
	}
	if prev == nil {
		return nil
	}
	if p, n := prev.TCBInfo.TCBEvaluationDataNumber, next.TCBInfo.TCBEvaluationDataNumber; n < p {
		return &FileError{FileTCBInfo, fmt.Errorf("%w: tcbEvaluationDataNumber %d, newest seen %d", ErrOlder, n, p)}
	}
	if p, n := prev.QEIdentity.TCBEvaluationDataNumber, next.QEIdentity.TCBEvaluationDataNumber; n < p {
		return &FileError{FileQEIdentity, fmt.Errorf("%w: tcbEvaluationDataNumber %d, newest seen %d", ErrOlder, n, p)}
	}
	for _, c := range []struct {
		file       string
		prev, next *CRL
	}{{FilePCKCRL, prev.PCKCRL, next.PCKCRL}, {FileRootCRL, prev.RootCRL, next.RootCRL}} {
		if c.prev == nil || c.next == nil {
			continue
		}
		p, n := c.prev.List, c.next.List
		if n.ThisUpdate.Before(p.ThisUpdate) || (p.Number != nil && n.Number != nil && n.Number.Cmp(p.Number) < 0) {
			return &FileError{c.file, fmt.Errorf("%w: CRL of %s (number %v), newest seen %s (number %v)", ErrOlder,
				n.ThisUpdate.UTC().Format(time.RFC3339), n.Number, p.ThisUpdate.UTC().Format(time.RFC3339), p.Number)}
		}
	}
	return nil
}

// onlineEntry is the state of one platform's online collateral.
type onlineEntry struct {
	mu        sync.Mutex // held across a fetch: one fetch per platform at a time
	vc        *Verified
	fetchedAt time.Time
	lastErr   error
	lastTry   time.Time // of the last failed refresh
	// supplied is the newest set an attester supplied that checkSupplied accepted.
	supplied *Verified
	// snap is vc and fetchedAt for RecheckPCK, which must not wait behind a fetch.
	snap atomic.Pointer[onlineSnap]
}

type onlineSnap struct {
	vc        *Verified
	fetchedAt time.Time
	// prev is the set in use before the TCB evaluation data number last went up, and since
	// when trustd first accepted the set that raised it: a TCB recovery's grace (TCBDowngrade)
	// compares the two. With a collateral store they survive a restart (previous.go); without
	// one, no grace applies after a restart (enforce at once).
	prev  *Verified
	since time.Time
}

// evalNumber is the higher TCB evaluation data number of a set's TCB info and QE identity.
func evalNumber(vc *Verified) int {
	return max(vc.TCBInfo.TCBEvaluationDataNumber, vc.QEIdentity.TCBEvaluationDataNumber)
}

// nextSnap is the snapshot after vc, fetched at, replaces old; without old (after a restart)
// the previous set comes from the disk cache, if one was kept there (previous.go).
func (v *QuoteVerifier) nextSnap(ctx context.Context, old *onlineSnap, fmspc, ca string, vc *Verified, at, now time.Time) *onlineSnap {
	s := &onlineSnap{vc: vc, fetchedAt: at}
	if old == nil {
		if prev, since := v.loadPrevious(ctx, fmspc, ca, now); prev != nil && evalNumber(prev) < evalNumber(vc) {
			s.prev, s.since = prev, since
		}
		return s
	}
	s.prev, s.since = old.prev, old.since
	if evalNumber(vc) > evalNumber(old.vc) {
		s.prev, s.since = old.vc, at
	}
	return s
}

// retryAfter is how long a failed refresh waits before the next attempt while the last good
// set serves.
func (f Freshness) retryAfter() time.Duration { return min(f.RefreshInterval/10, time.Minute) }

type onlineState struct {
	mu  sync.Mutex
	m   map[string]*onlineEntry
	max int // platforms kept; past it the state is dropped and rebuilt (zero: maxOnlineEntries)
}

func (s *onlineState) entry(key string) *onlineEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*onlineEntry{}
	}
	e, ok := s.m[key]
	if !ok {
		if max := s.max; len(s.m) >= max && max > 0 || len(s.m) >= maxOnlineEntries {
			s.m = map[string]*onlineEntry{}
		}
		e = &onlineEntry{}
		s.m[key] = e
	}
	return e
}

// maxOnlineEntries bounds the platforms whose online state is kept.
const maxOnlineEntries = 4096

// PlatformFreshness is what Status reports per platform.
type PlatformFreshness struct {
	Platform  string // fmspc/ca
	FetchedAt time.Time
	// TCBEvaluationDataNumber of the TCB info in use.
	TCBEvaluationDataNumber int
	// LastError of the last refresh, nil when it succeeded.
	LastError error
}

// Freshness reports each platform's online collateral, for metrics and status.
func (v *QuoteVerifier) Freshness() []PlatformFreshness {
	v.state.mu.Lock()
	defer v.state.mu.Unlock()
	var out []PlatformFreshness
	for k, e := range v.state.m {
		if !e.mu.TryLock() {
			continue // a fetch is running; report it next time
		}
		if e.vc != nil || e.lastErr != nil {
			p := PlatformFreshness{Platform: k, FetchedAt: e.fetchedAt, LastError: e.lastErr}
			if e.vc != nil {
				p.TCBEvaluationDataNumber = e.vc.TCBInfo.TCBEvaluationDataNumber
			}
			out = append(out, p)
		}
		e.mu.Unlock()
	}
	return out
}

// fetchFresh is Fetch under the freshness rules.
func (v *QuoteVerifier) fetchFresh(ctx context.Context, fmspc, ca string, now time.Time) (*Verified, error) {
	f := v.fresh
	key := fmspc + "/" + ca
	e := v.state.entry(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	usable := e.vc != nil && e.vc.ValidAt(now) == nil
	if usable && (now.Sub(e.fetchedAt) < f.RefreshInterval || e.lastErr != nil && now.Sub(e.lastTry) < f.retryAfter() && now.Sub(e.fetchedAt) <= f.MaxAge) {
		v.seen(true)
		return e.vc, nil
	}
	v.seen(false)
	vc, fetchedAt, err := v.refresh(ctx, e.vc, fmspc, ca, now)
	if err == nil {
		e.vc, e.fetchedAt, e.lastErr = vc, fetchedAt, nil
		e.snap.Store(v.nextSnap(ctx, e.snap.Load(), fmspc, ca, vc, fetchedAt, now))
		return vc, nil
	}
	e.lastErr, e.lastTry = err, now
	if vc != nil && (e.vc == nil || fetchedAt.After(e.fetchedAt)) {
		e.vc, e.fetchedAt = vc, fetchedAt // the disk cache's set, after a restart
		e.snap.Store(v.nextSnap(ctx, e.snap.Load(), fmspc, ca, vc, fetchedAt, now))
	}
	if e.vc != nil && now.Sub(e.fetchedAt) <= f.MaxAge && e.vc.ValidAt(now) == nil {
		return e.vc, nil // the last good set, until MaxAge
	}
	what := "no earlier set"
	if e.vc != nil {
		what = fmt.Sprintf("the last good set was fetched %s ago (at most %s)", now.Sub(e.fetchedAt).Round(time.Second), f.MaxAge)
	}
	var fe *FileError
	if errors.As(err, &fe) && errors.Is(err, ErrOlder) {
		return nil, attest.NotAuthentic("collateral."+fe.File, fmt.Errorf("platform fmspc %s (%s CA): %w; %s", fmspc, ca, err, what))
	}
	return nil, attest.Unavailable("collateral", fmt.Errorf("platform fmspc %s (%s CA): refresh failed: %w; %s", fmspc, ca, err, what))
}

// refresh gets a set from the store (the disk cache, or the one replicas share) while its fetch
// time is within the refresh interval, otherwise from PCS (or from the replica that holds the
// store's refresh lease), verifies it, refuses it when older than prev (or than the stored set,
// or the high-water mark), and stores it with its fetch time. Nothing read from the store is
// trusted: it is verified like a fetched set, and a set that does not verify is fetched again.
// When the refresh fails it returns the error and, if there is one, the stored set with its
// fetch time, for the caller to serve until MaxAge.
func (v *QuoteVerifier) refresh(ctx context.Context, prev *Verified, fmspc, ca string, now time.Time) (*Verified, time.Time, error) {
	src, f, store := v.src, v.fresh, v.store
	tee := attest.TDX
	if src.Fetch.SGX {
		tee = attest.SGX
	}
	key, err := StoreKey(tee, fmspc, ca)
	if err != nil {
		return nil, time.Time{}, err
	}
	// stored verifies a set read from the store; ok says whether it is current enough to use
	// without a fetch.
	stored := func(files map[string][]byte, at time.Time) (vc *Verified, ok bool) {
		at = attest.CredibleFetchTime(at, now)
		c, err := CollateralFromFiles(files)
		if err != nil {
			return nil, false
		}
		if vc, err = v.roots.VerifyCollateral(c, now); err != nil {
			return nil, false
		}
		return vc, now.Sub(at) < f.RefreshInterval && (prev == nil || NotOlder(prev, vc, f.MinTCBEvaluationDataNumber) == nil) &&
			v.advance(ctx, fmspc, ca, vc) == nil
	}
	var cached *Verified
	var cachedAt time.Time
	if store != nil {
		if files, at, err := store.Load(ctx, key); err == nil && files != nil {
			vc, ok := stored(files, at)
			if ok {
				return vc, attest.CredibleFetchTime(at, now), nil
			}
			if vc != nil {
				cached, cachedAt = vc, attest.CredibleFetchTime(at, now)
			}
		}
	}
	if prev == nil {
		prev = cached
	}
	fallback := func(err error) (*Verified, time.Time, error) {
		if cached != nil && NotOlder(prev, cached, f.MinTCBEvaluationDataNumber) == nil {
			return cached, cachedAt, err
		}
		return nil, time.Time{}, err
	}
	if store != nil {
		// One replica fetches; the others wait briefly for its set, then fetch themselves.
		files, at, release := attest.SharedRefresh(ctx, store, key, cachedAt)
		defer release()
		if files != nil {
			if vc, ok := stored(files, at); ok {
				return vc, attest.CredibleFetchTime(at, now), nil
			}
		}
	}
	c, err := FetchCollateral(ctx, src.withCA(ca), strings.ToLower(fmspc))
	if err != nil {
		return fallback(err)
	}
	vc, err := v.roots.VerifyCollateral(c, now)
	if err != nil {
		return fallback(err)
	}
	if err := NotOlder(prev, vc, f.MinTCBEvaluationDataNumber); err != nil {
		return fallback(err)
	}
	if err := v.advance(ctx, fmspc, ca, vc); err != nil {
		return fallback(err)
	}
	if store != nil {
		if prev != nil && prev.raw != nil && evalNumber(vc) > evalNumber(prev) {
			// A TCB recovery: keep the set it replaces for the grace (previous.go).
			_ = store.Store(ctx, previousKey(key), prev.raw.Map(), now)
		}
		// A failed write costs the next replica (or restart) a fetch; a shared store reports it.
		_ = store.Store(ctx, key, c.Map(), now)
	}
	return vc, now, nil
}

func (s *Source) withCA(ca string) FetchOptions {
	o := s.Fetch
	o.CA = ca
	return o
}

// checkSupplied accepts collateral the attester supplied only when it is at least as new as the
// newest trustd saw for the platform (fetched, or accepted from an attester before), and not
// below the minimum.
func (v *QuoteVerifier) checkSupplied(fmspc, ca string, vc *Verified) error {
	e := v.state.entry(fmspc + "/" + ca)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := NotOlder(e.vc, vc, v.fresh.MinTCBEvaluationDataNumber); err != nil {
		return CollateralError(err)
	}
	if err := NotOlder(e.supplied, vc, v.fresh.MinTCBEvaluationDataNumber); err != nil {
		return CollateralError(err)
	}
	e.supplied = vc // not older than the last in any part: the newest seen
	return nil
}
