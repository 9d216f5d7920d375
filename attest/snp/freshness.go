package snp

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-sev-guest/abi"

	"github.com/medicus-cloud/trust/attest"
)

// Freshness of AMD CRLs (issue 16). AMD issues the ARK-signed CRLs (which revoke an ASK or
// ASVK, and with it every VCEK or VLEK below it) for months; keeping one until its nextUpdate
// would accept a revoked chain for as long. A CRL is therefore fetched again every refresh
// interval, whatever its nextUpdate, also after a restart (the disk cache records when it was
// fetched), one fetch per CRL at a time. A failed refresh keeps the last good CRL until MaxAge,
// then verification fails closed naming the product and the CRL. A CRL older than the newest seen
// (thisUpdate, CRL number) is refused, by this verifier and, through Options.HighWater, by every
// replica. A CRL in a collateral directory is read again every refresh interval, so that a
// replaced file (a new bundle) takes effect within it. With a store shared by replicas
// (Options.Store) a replica uses a CRL another fetched within the interval, after checking it
// like a fetched one, and one replica at a time fetches it.
//
// VCEKs are not re-fetched: the evidence may carry its own, so its bytes are never what decides
// trust; a VCEK is trusted only through its chain and the current CRL, and a cached chain is
// checked again whenever the CRL in use changes.

// Defaults of CRL freshness.
const (
	DefaultRefreshInterval = time.Hour
	DefaultMaxAge          = 24 * time.Hour
)

// Freshness configures CRL refresh; zero fields take the defaults.
type Freshness struct {
	RefreshInterval time.Duration
	MaxAge          time.Duration
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

// retryAfter is how long a failed refresh waits before the next attempt while the last good CRL
// serves (the KDS negative cache spaces requests further).
func (f Freshness) retryAfter() time.Duration { return min(f.RefreshInterval/10, time.Minute) }

// HighWater is attest.HighWater: a monotonic mark of CRL versions shared by replicas.
type HighWater = attest.HighWater

// crlFetchedSuffix names the file beside a cached CRL that records when it was fetched.
const crlFetchedSuffix = ".fetched-at"

// crlEntry is the state of one product's VCEK or VLEK CRL.
type crlEntry struct {
	mu       sync.Mutex // held across a refresh: one per CRL at a time
	crl      *x509.RevocationList
	loadedAt time.Time // fetched from the KDS, or read from the collateral directory
	lastErr  error
	lastTry  time.Time
	// stale: a collateral bundle was imported since; read the CRL again at the next use.
	stale bool
	// snap is the CRL in use, for RecheckClaims, which must not wait behind a refresh.
	snap atomic.Pointer[crlSnap]
}

type crlSnap struct {
	crl      *x509.RevocationList
	loadedAt time.Time
}

func signerName(s abi.ReportSigner) string {
	if s == abi.VlekReportSigner {
		return SignerVLEK
	}
	return SignerVCEK
}

func (v *Verifier) crlState(key string) *crlEntry {
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.crls[key]
	if e == nil {
		e = &crlEntry{}
		v.crls[key] = e
	}
	return e
}

// LoadBundle implements attest.BundleLoader. The verifier reads its collateral directory at each
// use (new VCEKs count at once) but keeps a CRL for the refresh interval: after an import every
// CRL is read again at its next use, at the latest at trustd's next scheduled refresh (a
// minute), and refused if older than the one in use, which serves until then.
func (v *Verifier) LoadBundle(string) error {
	v.mu.Lock()
	es := make([]*crlEntry, 0, len(v.crls))
	for _, e := range v.crls {
		es = append(es, e)
	}
	v.mu.Unlock()
	for _, e := range es {
		e.mu.Lock()
		e.stale = true
		e.mu.Unlock()
	}
	return nil
}

// crl returns a CRL for product and signer that the ARK signed, that is current at now and no
// older than the newest seen, or an error; nil, nil only under RevocationIfAvailable when none
// can be found.
func (v *Verifier) crl(ctx context.Context, roots *Roots, signer string, now time.Time) (*x509.RevocationList, error) {
	if roots == nil {
		return nil, attest.NotAuthentic("certificates.ark", errors.New("no trusted AMD root"))
	}
	f := v.o.Freshness
	e := v.crlState(roots.Product + "/" + signer)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.crl != nil && !e.stale && crlCurrent(e.crl, now) {
		age := now.Sub(e.loadedAt)
		if age < f.RefreshInterval || e.lastErr != nil && now.Sub(e.lastTry) < f.retryAfter() && age <= f.MaxAge {
			return e.crl, nil
		}
	}
	c, at, err := v.loadCRL(ctx, roots, signer, e.crl, now)
	e.stale = false
	if err == nil {
		e.crl, e.loadedAt, e.lastErr = c, at, nil
		e.snap.Store(&crlSnap{crl: c, loadedAt: at})
		return c, nil
	}
	e.lastErr, e.lastTry = err, now
	if c != nil && (e.crl == nil || at.After(e.loadedAt)) {
		e.crl, e.loadedAt = c, at // the disk cache's CRL, after a restart
		e.snap.Store(&crlSnap{crl: c, loadedAt: at})
	}
	if e.crl != nil && crlCurrent(e.crl, now) && now.Sub(e.loadedAt) <= f.MaxAge {
		return e.crl, nil // the last good CRL, until MaxAge
	}
	if v.o.Revocation == RevocationIfAvailable && !errors.Is(err, attest.ErrOlderCollateral) {
		return nil, nil
	}
	what := "no earlier CRL"
	if e.crl != nil {
		what = fmt.Sprintf("the last good CRL was fetched %s ago (at most %s)", now.Sub(e.loadedAt).Round(time.Second), f.MaxAge)
	}
	err = fmt.Errorf("product %s, %s CRL (ARK-%s): %w; %s", roots.Product, signer, roots.Product, err, what)
	if errors.Is(err, attest.ErrOlderCollateral) {
		return nil, attest.NotAuthentic("certificates.crl", err)
	}
	return nil, attest.Unavailable("certificates.crl", err)
}

// loadCRL reads the collateral directory, or the disk cache while its fetch time is within the
// refresh interval, or else the KDS; it verifies the CRL, refuses it when older than prev (or the
// disk cache's CRL, or the shared high-water mark) and stores a fetched one with its fetch time.
// When it fails it returns the error and, if there is one, the disk cache's CRL with its fetch
// time, for the caller to serve until MaxAge.
func (v *Verifier) loadCRL(ctx context.Context, roots *Roots, signer string, prev *x509.RevocationList, now time.Time) (*x509.RevocationList, time.Time, error) {
	var reasons []error
	accept := func(b []byte) (*x509.RevocationList, error) {
		c, err := parseCRL(b, roots.ARK, now)
		if err != nil {
			return nil, err
		}
		if err := notOlderCRL(prev, c); err != nil {
			return nil, err
		}
		return c, nil
	}
	if v.o.CertsDir != "" {
		// The VCEK and VLEK CRLs are both signed by the same ARK and cannot be told apart by
		// their signature, so each is only read from a name that says which it is.
		names := []string{"crl-vlek.der", "crl-vlek.pem"}
		if signer == SignerVCEK {
			names = []string{"crl-vcek.der", "crl-vcek.pem", "crl.der", "crl.pem"}
		}
		names = append(names, crlCachePath(roots.Product, signer))
		for _, n := range names {
			b, err := readDirFile(v.o.CertsDir, n)
			if err != nil {
				return nil, time.Time{}, err
			}
			if b == nil {
				continue
			}
			c, err := accept(b)
			if err == nil {
				err = v.advance(ctx, roots.Product, signer, c)
			}
			if err == nil {
				return c, now, nil
			}
			reasons = append(reasons, err)
		}
		if len(reasons) == 0 {
			reasons = append(reasons, errors.New("none in the collateral directory"))
		}
		return nil, time.Time{}, errors.Join(reasons...)
	}
	key := crlStoreKey(roots.Product, signer)
	// stored checks a CRL read from the store (the disk cache, or the one replicas share) like
	// a fetched one; ok says whether it is recent enough to use without a fetch.
	stored := func(b []byte, at time.Time) (c *x509.RevocationList, ok bool, err error) {
		if c, err = accept(b); err != nil {
			return nil, false, err
		}
		if now.Sub(at) >= v.o.Freshness.RefreshInterval {
			return c, false, nil
		}
		if err := v.advance(ctx, roots.Product, signer, c); err != nil {
			return c, false, err
		}
		return c, true, nil
	}
	var cached *x509.RevocationList
	var cachedAt time.Time
	if v.store != nil {
		if files, at, err := v.store.Load(ctx, key); err == nil && files[storeCRLFile] != nil {
			if v.o.Getter == nil {
				at = now // without a KDS the cache is a collateral directory
			}
			at = attest.CredibleFetchTime(at, now)
			c, ok, err := stored(files[storeCRLFile], at)
			if ok {
				return c, at, nil
			}
			if err != nil {
				reasons = append(reasons, fmt.Errorf("cached: %w", err))
			} else {
				cached, cachedAt = c, at
			}
		}
	}
	if prev == nil {
		prev = cached
	}
	fail := func(err error) (*x509.RevocationList, time.Time, error) {
		reasons = append(reasons, err)
		if cached != nil && notOlderCRL(prev, cached) == nil {
			return cached, cachedAt, errors.Join(reasons...)
		}
		return nil, time.Time{}, errors.Join(reasons...)
	}
	if v.o.Getter == nil {
		return fail(errors.New("no CRL in the collateral directory or cache, and no KDS access configured"))
	}
	if v.store != nil {
		// One replica fetches; the others wait briefly for its CRL, then fetch themselves.
		files, at, release := attest.SharedRefresh(ctx, v.store, key, cachedAt)
		defer release()
		at = attest.CredibleFetchTime(at, now)
		if b := files[storeCRLFile]; b != nil {
			if c, ok, _ := stored(b, at); ok {
				return c, at, nil
			}
		}
	}
	b, err := v.fetch(ctx, crlURL(v.o.KDSURL, roots.Product, signer), func() []byte { return nil }, func([]byte) {})
	if err != nil {
		return fail(err)
	}
	c, err := accept(b)
	if err != nil {
		return fail(fmt.Errorf("from the KDS: %w", err))
	}
	if err := v.advance(ctx, roots.Product, signer, c); err != nil {
		return fail(err)
	}
	if v.store != nil {
		// A failed write costs the next replica (or restart) a fetch; a shared store reports it.
		_ = v.store.Store(ctx, key, map[string][]byte{storeCRLFile: b}, now)
	}
	return c, now, nil
}

// advance records c in the shared high-water mark, if one is configured.
func (v *Verifier) advance(ctx context.Context, product, signer string, c *x509.RevocationList) error {
	if v.o.HighWater == nil {
		return nil
	}
	n := int64(-1)
	if c.Number != nil && c.Number.IsInt64() {
		n = c.Number.Int64()
	}
	return v.o.HighWater.Advance(ctx, string(attest.SEVSNP)+"/"+product+"/crl-"+signer, c.ThisUpdate, n)
}

// notOlderCRL refuses next when it was issued before prev or carries a lower CRL number.
func notOlderCRL(prev, next *x509.RevocationList) error {
	if prev == nil {
		return nil
	}
	if next.ThisUpdate.Before(prev.ThisUpdate) || prev.Number != nil && next.Number != nil && next.Number.Cmp(prev.Number) < 0 {
		return fmt.Errorf("%w: CRL of %s (number %v), newest seen %s (number %v)", attest.ErrOlderCollateral,
			next.ThisUpdate.UTC().Format(time.RFC3339), next.Number, prev.ThisUpdate.UTC().Format(time.RFC3339), prev.Number)
	}
	return nil
}

// CollateralAges implements attest.CollateralReporter: the CRL of each product and signer in use.
func (v *Verifier) CollateralAges() []attest.CollateralAge {
	v.mu.Lock()
	keys := make([]string, 0, len(v.crls))
	entries := make([]*crlEntry, 0, len(v.crls))
	for k, e := range v.crls {
		keys = append(keys, k)
		entries = append(entries, e)
	}
	v.mu.Unlock()
	var out []attest.CollateralAge
	for i, e := range entries {
		if !e.mu.TryLock() {
			continue // a refresh is running; report it next time
		}
		if e.crl != nil {
			product, signer, _ := strings.Cut(keys[i], "/")
			out = append(out, attest.CollateralAge{TEE: attest.SEVSNP, Platform: product, Item: "crl-" + signer,
				FetchedAt: e.loadedAt, Issued: e.crl.ThisUpdate, Failing: e.lastErr != nil})
		}
		e.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Platform+out[i].Item < out[j].Platform+out[j].Item })
	return out
}

// RefreshCollateral implements attest.CollateralRefresher: every CRL in use is refreshed when
// due, whether or not an attestation asks for it.
func (v *Verifier) RefreshCollateral(ctx context.Context, now time.Time) {
	v.mu.Lock()
	keys := make([]string, 0, len(v.crls))
	for k := range v.crls {
		keys = append(keys, k)
	}
	v.mu.Unlock()
	for _, k := range keys {
		product, signer, _ := strings.Cut(k, "/")
		if r := v.roots[product]; r != nil {
			_, _ = v.crl(ctx, r, signer, now) // failures are reported by CollateralAges and at use
		}
	}
}

// RecheckClaims implements attest.ClaimsRechecker: claims of a chain checked against a CRL are
// refused once the CRL in use revokes the chain's ASK or ASVK, or once the CRL is older than the
// maximum age. It reads only memory.
func (v *Verifier) RecheckClaims(c *attest.Claims, now time.Time) error {
	if c.TEE != attest.SEVSNP || c.Attributes[ClaimCRLChecked] != 1 {
		return nil
	}
	product, signer := c.Platform["product"], c.Platform["signer"]
	r := v.roots[product]
	if r == nil {
		return nil
	}
	if signer != SignerVCEK && signer != SignerVLEK {
		return nil
	}
	// A replica that has not verified evidence of this product itself (restarted, or another
	// replica issued the token) holds no CRL for it yet: registering the CRL makes the next
	// scheduled RefreshCollateral load it, so that the claims are checked from then on.
	e := v.crlState(product + "/" + signer)
	s := e.snap.Load()
	if s == nil {
		return nil
	}
	ica, field := r.ASK, "certificates.ask"
	if signer == SignerVLEK {
		ica, field = r.ASVK, "certificates.asvk"
	}
	if ica != nil {
		for _, rc := range s.crl.RevokedCertificateEntries {
			if rc.SerialNumber != nil && rc.SerialNumber.Cmp(ica.SerialNumber) == 0 {
				return attest.NotAuthentic(field, fmt.Errorf("product %s: revoked by AMD on %s (serial %x)", product, rc.RevocationTime.UTC().Format(time.DateOnly), ica.SerialNumber))
			}
		}
	}
	if age := now.Sub(s.loadedAt); age > v.o.Freshness.MaxAge {
		return attest.Unavailable("certificates.crl", fmt.Errorf("product %s, %s CRL: the last good CRL was fetched %s ago (at most %s)", product, signer, age.Round(time.Second), v.o.Freshness.MaxAge))
	}
	return nil
}
