// Package consent checks the patient's consent to a key release: a statement that the tenant
// (a hospital) signed under a key it registered with trustd, naming the patient pseudonym, the
// purposes of use, the recipient service and a validity (docs/consent.md). It also keeps the
// registered keys and the withdrawals of consent, persisted so that both survive a restart.
//
// Nothing of a statement's content leaves this package in an error: denials name the field
// that failed and what the policy expected, never the patient, and the audit record holds the
// statement's ID and digest only.
package consent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/internal/every"
	"github.com/medicus-cloud/trust/internal/shareddoc"
)

// Well-known purposes of use. Policies may name others of the same form.
const (
	Treatment        = "treatment"
	Teleconsultation = "teleconsultation"
	QualityAssurance = "quality-assurance"
	Research         = "research"
)

// Limits on outside input.
const (
	MaxStatementSize = 8 << 10
	MaxPurposes      = 16
	// MaxKeysPerTenant bounds the registered keys of one tenant.
	MaxKeysPerTenant = 32
	// MaxValidity bounds exp - nbf of a statement: consent is renewed at least yearly.
	MaxValidity = 366 * 24 * time.Hour
	// Leeway is the clock skew accepted on nbf and exp.
	Leeway = 30 * time.Second
)

// Type is the JOSE "typ" header a statement must carry.
const Type = "medicus-consent+jwt"

var (
	idRE     = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	tenantRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)
	algs     = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.EdDSA}
)

// ErrMalformed marks a statement that is not a signed statement at all (InvalidArgument).
var ErrMalformed = errors.New("consent: malformed statement")

// Denial is a refused statement: Claim names the field ("consent", "consent.signature",
// "consent.purpose", ...), Seen and Expected say why without any patient data.
type Denial struct {
	Claim, Seen, Expected string
}

func (d *Denial) Error() string {
	return fmt.Sprintf("%s: %s, expected %s", d.Claim, d.Seen, d.Expected)
}

// Claims are a statement's payload (JWT claims; purposes is private to this profile).
type Claims struct {
	ID        string   `json:"jti"`
	Issuer    string   `json:"iss"` // the tenant
	Subject   string   `json:"sub"` // the patient pseudonym
	Audience  string   `json:"aud"` // the recipient service
	Purposes  []string `json:"purposes"`
	NotBefore int64    `json:"nbf"`
	Expires   int64    `json:"exp"`
	IssuedAt  int64    `json:"iat,omitempty"`
}

// Requirement is what a release needs, from the grant's policy.
type Requirement struct {
	Purposes  []string
	Recipient string
}

// Release is the release a statement is checked for.
type Release struct {
	Tenant  string // the context's tenant
	Patient string // the value of the policy's patient field in the context
	Now     time.Time
}

// Result identifies the accepted statement for the audit record.
type Result struct {
	ID     string
	Digest string // lowercase hex SHA-256 of the statement as sent
}

// Registry holds the tenants' consent keys and withdrawals in a shared document (package
// shareddoc): a private file, or a row in PostgreSQL that every replica reads. Changes are made
// on the stored document under its lock and are durable before they return; Run reads the
// document again every poll interval, so that a withdrawal made on another replica applies here
// within it, and once the registry could not read the document for longer than MaxStale it
// refuses every check (fail closed) until a read succeeds.
type Registry struct {
	store Store
	o     Options

	mu        sync.RWMutex
	doc       []byte // the document as last read or written
	st        state
	keys      map[string]map[string]any // tenant -> kid -> parsed public key
	refreshed time.Time                 // the last successful read or write
}

// Store holds the registry's document: shareddoc.File or shareddoc.PG.
type Store interface {
	// Read returns the document; nil when there is none yet.
	Read(ctx context.Context) ([]byte, error)
	// Update passes the current document to f under an exclusive lock and stores what f
	// returns durably, unless f fails.
	Update(ctx context.Context, f func(cur []byte) ([]byte, error)) error
}

// Options tune a Registry's polling; the zero value suits one trustd that is the only writer
// and never runs Run.
type Options struct {
	// PollInterval is how often Run reads the document again; default DefaultPollInterval.
	PollInterval time.Duration
	// MaxStale is how long after its last successful read the registry still answers; 0
	// forever. Past it, Check fails with ErrStale.
	MaxStale time.Duration
	// OnError is told of failed reads (a log line); may be nil.
	OnError func(error)
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Defaults for replicas (see internal/daemon): as for the revocation list.
const (
	DefaultPollInterval = 2 * time.Second
	DefaultMaxStale     = 30 * time.Second
)

// ErrStale is returned by Check when the registry could not read its document for longer than
// MaxStale: a withdrawal made elsewhere might be missing. It wraps attest.ErrUnavailable, so
// that the release answers Unavailable.
var ErrStale = fmt.Errorf("%w: consent registry not read for too long", attest.ErrUnavailable)

type state struct {
	// Keys: tenant -> kid -> PKIX DER.
	Keys map[string]map[string][]byte `json:"keys"`
	// Withdrawn: tenant -> statement ID -> when.
	Withdrawn map[string]map[string]time.Time `json:"withdrawn"`
}

// Open loads the registry from the state file at path (created on its first change) and never
// polls it.
func Open(path string) (*Registry, error) {
	return OpenStore(context.Background(), &shareddoc.File{Path: path}, Options{})
}

// OpenStore loads the registry from store; Run keeps reading it.
func OpenStore(ctx context.Context, store Store, o Options) (*Registry, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	r := &Registry{store: store, o: o}
	if err := r.Refresh(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Run reads the document again every poll interval until ctx ends.
func (r *Registry) Run(ctx context.Context) { every.Run(ctx, r.o.PollInterval, r.Refresh, r.o.OnError) }

// Refresh reads the document again. On failure the registry keeps what it had.
func (r *Registry) Refresh(ctx context.Context) error {
	b, err := r.store.Read(ctx)
	if err != nil {
		return fmt.Errorf("consent registry: %w", err)
	}
	r.mu.RLock()
	same := bytes.Equal(b, r.doc) && r.keys != nil
	r.mu.RUnlock()
	if same {
		r.mu.Lock()
		r.refreshed = r.o.Now()
		r.mu.Unlock()
		return nil
	}
	st, keys, err := parseState(b)
	if err != nil {
		return err
	}
	r.take(b, st, keys)
	return nil
}

// take makes doc, as parsed, the registry's state.
func (r *Registry) take(doc []byte, st state, keys map[string]map[string]any) {
	r.mu.Lock()
	r.doc, r.st, r.keys, r.refreshed = doc, st, keys, r.o.Now()
	r.mu.Unlock()
}

// parseState decodes a stored document (nil: empty) and parses its keys.
func parseState(b []byte) (state, map[string]map[string]any, error) {
	st, err := decodeState(b)
	if err != nil {
		return state{}, nil, err
	}
	keys, err := st.parseKeys()
	if err != nil {
		return state{}, nil, err
	}
	return st, keys, nil
}

// decodeState decodes a stored document; nil is the empty registry.
func decodeState(b []byte) (state, error) {
	st := state{Keys: map[string]map[string][]byte{}, Withdrawn: map[string]map[string]time.Time{}}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &st); err != nil {
			return state{}, fmt.Errorf("consent registry: %w", err)
		}
	}
	if st.Keys == nil {
		st.Keys = map[string]map[string][]byte{}
	}
	if st.Withdrawn == nil {
		st.Withdrawn = map[string]map[string]time.Time{}
	}
	return st, nil
}

// parseKeys parses the registered keys: tenant -> kid -> public key.
func (st state) parseKeys() (map[string]map[string]any, error) {
	keys := map[string]map[string]any{}
	for t, ks := range st.Keys {
		keys[t] = map[string]any{}
		for kid, der := range ks {
			k, err := parseKey(der)
			if err != nil {
				return nil, fmt.Errorf("consent registry: key %s: %w", kid, err)
			}
			keys[t][kid] = k
		}
	}
	return keys, nil
}

// change applies f to the stored document under its lock, durably, and takes the result as
// the registry's state.
func (r *Registry) change(f func(st *state) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), changeTimeout)
	defer cancel()
	var (
		doc  []byte
		st   state
		keys map[string]map[string]any
	)
	err := r.store.Update(ctx, func(cur []byte) ([]byte, error) {
		var err error
		if st, err = decodeState(cur); err != nil {
			return nil, err
		}
		if err := f(&st); err != nil {
			return nil, err
		}
		if keys, err = st.parseKeys(); err != nil {
			return nil, err
		}
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return nil, err
		}
		doc = append(b, '\n')
		return doc, nil
	})
	if err != nil {
		return err
	}
	r.take(doc, st, keys)
	return nil
}

// changeTimeout bounds one change of the stored document.
const changeTimeout = 10 * time.Second

// fresh reports ErrStale once the document was last read longer than MaxStale ago.
func (r *Registry) fresh() error {
	if r.o.MaxStale <= 0 {
		return nil
	}
	r.mu.RLock()
	last := r.refreshed
	r.mu.RUnlock()
	if r.o.Now().Sub(last) > r.o.MaxStale {
		return ErrStale
	}
	return nil
}

// CheckTenant and CheckID validate admin input.
func CheckTenant(t string) error {
	if !tenantRE.MatchString(t) {
		return fmt.Errorf("must match %s", tenantRE)
	}
	return nil
}

// CheckID validates a key or statement ID.
func CheckID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("must match %s", idRE)
	}
	return nil
}

// ParsePublicKey reads a PKIX public key, PEM or DER: ECDSA P-256 or P-384, or Ed25519.
func ParsePublicKey(b []byte) ([]byte, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("PEM block %q, want PUBLIC KEY", blk.Type)
		}
		b = blk.Bytes
	}
	if _, err := parseKey(b); err != nil {
		return nil, err
	}
	return b, nil
}

func parseKey(der []byte) (any, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errors.New("not a PKIX public key")
	}
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, errors.New("ECDSA key on a curve other than P-256 or P-384")
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%T keys are not accepted: ECDSA P-256/P-384 or Ed25519", k)
	}
	return k, nil
}

func algOf(k any) jose.SignatureAlgorithm {
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P384() {
			return jose.ES384
		}
		return jose.ES256
	}
	return jose.EdDSA
}

// RegisterKey adds (or replaces) the key kid of tenant and persists it. pub is PKIX, PEM or DER.
func (r *Registry) RegisterKey(tenant, kid string, pub []byte) error {
	der, err := ParsePublicKey(pub)
	if err != nil {
		return fmt.Errorf("public_key: %w", err)
	}
	return r.change(func(st *state) error {
		if _, ok := st.Keys[tenant][kid]; !ok && len(st.Keys[tenant]) >= MaxKeysPerTenant {
			return fmt.Errorf("key_id: tenant has %d keys, at most %d", len(st.Keys[tenant]), MaxKeysPerTenant)
		}
		if st.Keys[tenant] == nil {
			st.Keys[tenant] = map[string][]byte{}
		}
		st.Keys[tenant][kid] = der
		return nil
	})
}

// Withdraw records the withdrawal of statement id of tenant, durably, before it returns: the
// next release that presents the statement is denied here, and on the other replicas within
// their poll interval.
func (r *Registry) Withdraw(tenant, id string, now time.Time) error {
	return r.change(func(st *state) error {
		if st.Withdrawn[tenant] == nil {
			st.Withdrawn[tenant] = map[string]time.Time{}
		}
		if _, ok := st.Withdrawn[tenant][id]; !ok {
			st.Withdrawn[tenant][id] = now.UTC()
		}
		return nil
	})
}

// Merge adds to the stored document what the state file at path holds and it lacks: every
// withdrawal, and every key whose ID the document does not have (a key the document has wins).
// It moves a registry from a replica's data directory to a shared store without losing a
// withdrawal. A missing file is no error.
func (r *Registry) Merge(path string) (added int, err error) {
	b, err := (&shareddoc.File{Path: path}).Read(context.Background())
	if err != nil || b == nil {
		return 0, err
	}
	old, err := decodeState(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	err = r.change(func(st *state) error {
		added = 0
		for t, ws := range old.Withdrawn {
			for id, at := range ws {
				if _, ok := st.Withdrawn[t][id]; !ok {
					if st.Withdrawn[t] == nil {
						st.Withdrawn[t] = map[string]time.Time{}
					}
					st.Withdrawn[t][id] = at
					added++
				}
			}
		}
		for t, ks := range old.Keys {
			for kid, der := range ks {
				if _, ok := st.Keys[t][kid]; !ok {
					if st.Keys[t] == nil {
						st.Keys[t] = map[string][]byte{}
					}
					st.Keys[t][kid] = der
					added++
				}
			}
		}
		return nil
	})
	return added, err
}

// Check verifies raw for a release: signed by a key registered for the release's tenant, issued
// by that tenant, valid now, not withdrawn, for the required recipient, naming every required
// purpose and the release's patient (compared in constant time).
func (r *Registry) Check(raw []byte, req Requirement, rel Release) (*Result, error) {
	if err := r.fresh(); err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, &Denial{Claim: "consent", Seen: "absent", Expected: fmt.Sprintf("a consent statement for purposes %v", req.Purposes)}
	}
	if len(raw) > MaxStatementSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(raw), MaxStatementSize)
	}
	var c *Claims
	var err error
	if raw[0] == 'e' { // base64url of `{"`: a JWS; anything else must be COSE (cwt.go)
		c, err = r.verifyJWS(raw, rel.Tenant)
	} else {
		c, err = r.verifyCOSE(raw, rel.Tenant)
	}
	if err != nil {
		return nil, err
	}
	res := &Result{ID: c.ID, Digest: digest(raw)}
	switch {
	case CheckID(c.ID) != nil:
		return res, &Denial{Claim: "consent.jti", Seen: "missing or malformed", Expected: "1-64 characters of [A-Za-z0-9._-]"}
	case subtle.ConstantTimeCompare([]byte(c.Issuer), []byte(rel.Tenant)) != 1:
		return res, &Denial{Claim: "consent.iss", Seen: "another tenant", Expected: "the release's tenant"}
	// In seconds, with nbf > 0: exp - nbf then cannot overflow (in nanoseconds it could).
	case c.NotBefore <= 0 || c.Expires <= c.NotBefore || c.Expires-c.NotBefore > int64(MaxValidity/time.Second):
		return res, &Denial{Claim: "consent.exp", Seen: "missing or unbounded validity", Expected: "nbf < exp within " + MaxValidity.String()}
	case rel.Now.Add(Leeway).Before(time.Unix(c.NotBefore, 0)):
		return res, &Denial{Claim: "consent.nbf", Seen: "not yet valid", Expected: "nbf before now"}
	case !rel.Now.Add(-Leeway).Before(time.Unix(c.Expires, 0)):
		return res, &Denial{Claim: "consent.exp", Seen: "expired at " + time.Unix(c.Expires, 0).UTC().Format(time.RFC3339), Expected: "a statement valid now"}
	case subtle.ConstantTimeCompare([]byte(c.Audience), []byte(req.Recipient)) != 1:
		return res, &Denial{Claim: "consent.aud", Seen: "another recipient", Expected: "recipient " + req.Recipient}
	}
	if len(c.Purposes) > MaxPurposes {
		return res, &Denial{Claim: "consent.purposes", Seen: fmt.Sprintf("%d purposes", len(c.Purposes)), Expected: fmt.Sprintf("at most %d", MaxPurposes)}
	}
	for _, p := range req.Purposes {
		if !slices.Contains(c.Purposes, p) {
			return res, &Denial{Claim: "consent.purpose", Seen: "purpose " + p + " not granted", Expected: fmt.Sprintf("a statement granting purposes %v", req.Purposes)}
		}
	}
	// The patient: constant time, so that timing does not reveal how much of a guess matched.
	if rel.Patient == "" || subtle.ConstantTimeCompare([]byte(c.Subject), []byte(rel.Patient)) != 1 {
		return res, &Denial{Claim: "consent.sub", Seen: "another patient than the release context names", Expected: "the statement's patient"}
	}
	r.mu.RLock()
	withdrawnAt, withdrawn := r.st.Withdrawn[rel.Tenant][c.ID]
	r.mu.RUnlock()
	if withdrawn {
		return res, &Denial{Claim: "consent.withdrawn", Seen: "withdrawn at " + withdrawnAt.Format(time.RFC3339), Expected: "consent not withdrawn"}
	}
	return res, nil
}

// verifyJWS checks a JWS statement's header and signature and returns its claims.
func (r *Registry) verifyJWS(raw []byte, tenant string) (*Claims, error) {
	jws, err := jose.ParseSignedCompact(string(raw), algs)
	if err != nil {
		if strings.Contains(err.Error(), "algorithm") {
			return nil, &Denial{Claim: "consent.signature", Seen: "unsigned or signed with an algorithm not accepted", Expected: "ES256, ES384 or EdDSA"}
		}
		return nil, fmt.Errorf("%w: not a JWS compact serialization", ErrMalformed)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: %d signatures, want 1", ErrMalformed, len(jws.Signatures))
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != Type {
		return nil, &Denial{Claim: "consent.typ", Seen: fmt.Sprintf("%q", typ), Expected: fmt.Sprintf("%q", Type)}
	}
	key, err := r.key(tenant, h.KeyID)
	if err != nil {
		return nil, err
	}
	if jose.SignatureAlgorithm(h.Algorithm) != algOf(key) {
		return nil, &Denial{Claim: "consent.signature", Seen: "algorithm " + quoteID(h.Algorithm), Expected: string(algOf(key)) + " for key " + h.KeyID}
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, &Denial{Claim: "consent.signature", Seen: "signature does not verify", Expected: "a signature by key " + h.KeyID}
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, &Denial{Claim: "consent", Seen: "payload is not the statement's JSON claims", Expected: "docs/consent.md claims"}
	}
	return &c, nil
}

// key returns the registered key kid of tenant.
func (r *Registry) key(tenant, kid string) (any, error) {
	r.mu.RLock()
	key, ok := r.keys[tenant][kid]
	r.mu.RUnlock()
	if !ok {
		return nil, &Denial{Claim: "consent.signature", Seen: "key ID " + quoteID(kid) + " not registered for the release's tenant", Expected: "a key the tenant registered"}
	}
	return key, nil
}

func quoteID(s string) string {
	if CheckID(s) != nil {
		return "(malformed)"
	}
	return fmt.Sprintf("%q", s)
}

func digest(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}
