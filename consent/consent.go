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

	"github.com/medicus-cloud/trust/internal/statefile"
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

// Registry holds the tenants' consent keys and withdrawals in a state file.
type Registry struct {
	mu   sync.RWMutex
	path string
	st   state
	keys map[string]map[string]any // tenant -> kid -> parsed public key
}

type state struct {
	// Keys: tenant -> kid -> PKIX DER.
	Keys map[string]map[string][]byte `json:"keys"`
	// Withdrawn: tenant -> statement ID -> when.
	Withdrawn map[string]map[string]time.Time `json:"withdrawn"`
}

// Open loads the registry at path (created on first change).
func Open(path string) (*Registry, error) {
	r := &Registry{path: path, st: state{Keys: map[string]map[string][]byte{}, Withdrawn: map[string]map[string]time.Time{}}}
	if err := statefile.Load(path, &r.st); err != nil {
		return nil, fmt.Errorf("consent registry: %w", err)
	}
	if r.st.Keys == nil {
		r.st.Keys = map[string]map[string][]byte{}
	}
	if r.st.Withdrawn == nil {
		r.st.Withdrawn = map[string]map[string]time.Time{}
	}
	r.keys = map[string]map[string]any{}
	for t, ks := range r.st.Keys {
		r.keys[t] = map[string]any{}
		for kid, der := range ks {
			k, err := parseKey(der)
			if err != nil {
				return nil, fmt.Errorf("consent registry: key %s: %w", kid, err)
			}
			r.keys[t][kid] = k
		}
	}
	return r, nil
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
	k, _ := parseKey(der)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.st.Keys[tenant][kid]; !ok && len(r.st.Keys[tenant]) >= MaxKeysPerTenant {
		return fmt.Errorf("key_id: tenant has %d keys, at most %d", len(r.st.Keys[tenant]), MaxKeysPerTenant)
	}
	next := cloneState(r.st)
	if next.Keys[tenant] == nil {
		next.Keys[tenant] = map[string][]byte{}
	}
	next.Keys[tenant][kid] = der
	if err := statefile.Save(r.path, next); err != nil {
		return err
	}
	r.st = next
	if r.keys[tenant] == nil {
		r.keys[tenant] = map[string]any{}
	}
	r.keys[tenant][kid] = k
	return nil
}

// Withdraw records the withdrawal of statement id of tenant, durably, before it returns: the
// next release that presents the statement is denied.
func (r *Registry) Withdraw(tenant, id string, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := cloneState(r.st)
	if next.Withdrawn[tenant] == nil {
		next.Withdrawn[tenant] = map[string]time.Time{}
	}
	if _, ok := next.Withdrawn[tenant][id]; ok {
		return nil
	}
	next.Withdrawn[tenant][id] = now.UTC()
	if err := statefile.Save(r.path, next); err != nil {
		return err
	}
	r.st = next
	return nil
}

func cloneState(s state) state {
	n := state{Keys: map[string]map[string][]byte{}, Withdrawn: map[string]map[string]time.Time{}}
	for t, ks := range s.Keys {
		n.Keys[t] = map[string][]byte{}
		for k, v := range ks {
			n.Keys[t][k] = v
		}
	}
	for t, ws := range s.Withdrawn {
		n.Withdrawn[t] = map[string]time.Time{}
		for k, v := range ws {
			n.Withdrawn[t][k] = v
		}
	}
	return n
}

// Check verifies raw for a release: signed by a key registered for the release's tenant, issued
// by that tenant, valid now, not withdrawn, for the required recipient, naming every required
// purpose and the release's patient (compared in constant time).
func (r *Registry) Check(raw []byte, req Requirement, rel Release) (*Result, error) {
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
	case c.NotBefore == 0 || c.Expires == 0 || c.Expires <= c.NotBefore || time.Duration(c.Expires-c.NotBefore)*time.Second > MaxValidity:
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
