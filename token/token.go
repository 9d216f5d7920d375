// Package token issues and verifies attestation result tokens: short-lived CWTs signed as
// COSE_Sign1 (ES256), with claims in the IETF RATS attestation-results (EAR) model and a
// confirmation claim that binds the workload's HPKE public key.
//
// The release calls of trustd accept a token only if it verifies under one of trustd's token
// keys, has not expired, and names the requested key among its grants; the release is then sealed
// to the key in the confirmation claim, so a stolen token is useless without the workload's
// private key.
package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// Profile is the EAT profile of our tokens.
const Profile = "tag:medicus.cloud,2026:trust/ear/v1"

// StatusAffirming is the EAR trustworthiness status of every token we issue: denials get no token.
const StatusAffirming = "affirming"

// DefaultLifetime of a token.
const DefaultLifetime = 5 * time.Minute

// MaxTokenSize bounds what Verify parses.
const MaxTokenSize = 16 << 10

// Errors from Verify; the service maps all of them to Unauthenticated.
var (
	ErrMalformed  = errors.New("token malformed")
	ErrSignature  = errors.New("token signature invalid")
	ErrUnknownKey = errors.New("token signed by an unknown key")
	ErrExpired    = errors.New("token expired")
	ErrNotYet     = errors.New("token not yet valid")
	// ErrAlgorithm: the token names an algorithm other than ES256 ("none", HS256, ...).
	ErrAlgorithm = errors.New("token algorithm not accepted")
)

// Grant kinds.
const (
	KindSecret  = "secret"
	KindDataKey = "data_key"
)

// Grant is a name the workload may receive.
type Grant struct {
	Kind string `cbor:"1,keyasint" json:"kind"`
	Name string `cbor:"2,keyasint" json:"name"`
}

// Confirmation binds the workload's HPKE public key (RFC 8747 style "cnf").
type Confirmation struct {
	KEM       uint16 `cbor:"1,keyasint" json:"kem"`
	KDF       uint16 `cbor:"2,keyasint" json:"kdf"`
	AEAD      uint16 `cbor:"3,keyasint" json:"aead"`
	PublicKey []byte `cbor:"4,keyasint" json:"pk"`
}

// Claims of a result token. Integer keys follow the CWT (RFC 8392), EAT and EAR registries;
// private claims use negative keys.
type Claims struct {
	Issuer       string            `cbor:"1,keyasint,omitempty" json:"iss,omitempty"`
	Expiry       int64             `cbor:"4,keyasint" json:"exp"`
	NotBefore    int64             `cbor:"5,keyasint" json:"nbf"`
	IssuedAt     int64             `cbor:"6,keyasint" json:"iat"`
	ID           string            `cbor:"7,keyasint" json:"jti"`
	Confirmation Confirmation      `cbor:"8,keyasint" json:"cnf"`
	Profile      string            `cbor:"265,keyasint" json:"eat_profile"`
	Status       string            `cbor:"1000,keyasint" json:"ear.status"`
	TEE          string            `cbor:"-70000,keyasint" json:"medicus.tee"`
	Measurement  []byte            `cbor:"-70001,keyasint,omitempty" json:"medicus.measurement,omitempty"`
	Policy       string            `cbor:"-70002,keyasint" json:"medicus.policy"`
	PolicyDigest []byte            `cbor:"-70003,keyasint" json:"medicus.policy_digest"`
	Grants       []Grant           `cbor:"-70004,keyasint,omitempty" json:"medicus.grants,omitempty"`
	Platform     map[string]string `cbor:"-70005,keyasint,omitempty" json:"medicus.platform,omitempty"`
}

// Granted reports whether the token grants name of kind.
func (c *Claims) Granted(kind, name string) bool {
	for _, g := range c.Grants {
		if g.Kind == kind && g.Name == name {
			return true
		}
	}
	return false
}

// KeyID returns the key ID of a public key: base64url (no padding) of SHA-256 of its SPKI.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// Options configure an Issuer.
type Options struct {
	// Key signs new tokens (ECDSA P-256).
	Key *ecdsa.PrivateKey
	// Verify are further public keys whose tokens are still accepted (rotation).
	Verify []*ecdsa.PublicKey
	// Issuer is the "iss" claim.
	Issuer   string
	Lifetime time.Duration
	Now      func() time.Time
	Rand     io.Reader
	// NotAfter optionally says until when each key (by key ID) is published; KeySet.Options
	// fills it. It only feeds TokenKeys.
	NotAfter map[string]time.Time
}

// Issuer signs and verifies tokens.
type Issuer struct {
	o      Options
	kid    string
	signer cose.Signer
	keys   map[string]*ecdsa.PublicKey

	verified verifiedCache
}

// NewIssuer returns an Issuer.
func NewIssuer(o Options) (*Issuer, error) {
	if o.Key == nil {
		return nil, errors.New("token: no signing key")
	}
	if o.Lifetime == 0 {
		o.Lifetime = DefaultLifetime
	}
	if o.Lifetime < 0 || o.Lifetime > time.Hour {
		return nil, fmt.Errorf("token: lifetime %v outside (0, 1h]", o.Lifetime)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	signer, err := cose.NewSigner(cose.AlgorithmES256, o.Key)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	i := &Issuer{o: o, signer: signer, keys: map[string]*ecdsa.PublicKey{}}
	for _, pub := range append([]*ecdsa.PublicKey{&o.Key.PublicKey}, o.Verify...) {
		kid, err := KeyID(pub)
		if err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
		i.keys[kid] = pub
	}
	i.kid, _ = KeyID(&o.Key.PublicKey)
	return i, nil
}

// KeyID returns the ID of the current signing key.
func (i *Issuer) KeyID() string { return i.kid }

// PublicKeys returns the accepted public keys by key ID.
func (i *Issuer) PublicKeys() map[string]*ecdsa.PublicKey { return i.keys }

// Issue fills the time, ID, profile and status claims and signs c as a CWT (COSE_Sign1).
func (i *Issuer) Issue(c *Claims) ([]byte, time.Time, error) {
	cc, exp, err := i.fill(c)
	if err != nil {
		return nil, time.Time{}, err
	}
	b, err := i.signCWT(cc)
	return b, exp, err
}

// IssueJWT is Issue for web relying parties: the same claims as a JWT (JWS compact, ES256).
func (i *Issuer) IssueJWT(c *Claims) ([]byte, time.Time, error) {
	cc, exp, err := i.fill(c)
	if err != nil {
		return nil, time.Time{}, err
	}
	b, err := i.signJWT(cc)
	return b, exp, err
}

// IssueBoth signs one set of claims (one token ID, one expiry) as a CWT and as a JWT.
func (i *Issuer) IssueBoth(c *Claims) (cwt, jwt []byte, exp time.Time, err error) {
	cc, exp, err := i.fill(c)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	if cwt, err = i.signCWT(cc); err != nil {
		return nil, nil, time.Time{}, err
	}
	if jwt, err = i.signJWT(cc); err != nil {
		return nil, nil, time.Time{}, err
	}
	return cwt, jwt, exp, nil
}

func (i *Issuer) fill(c *Claims) (*Claims, time.Time, error) {
	if c == nil {
		return nil, time.Time{}, errors.New("token: nil claims")
	}
	now := i.o.Now()
	exp := now.Add(i.o.Lifetime)
	id := make([]byte, 16)
	if _, err := io.ReadFull(i.o.Rand, id); err != nil {
		return nil, time.Time{}, err
	}
	cc := *c
	cc.Issuer, cc.IssuedAt, cc.NotBefore, cc.Expiry = i.o.Issuer, now.Unix(), now.Unix(), exp.Unix()
	cc.ID = base64.RawURLEncoding.EncodeToString(id)
	cc.Profile, cc.Status = Profile, StatusAffirming
	return &cc, time.Unix(cc.Expiry, 0), nil
}

func (i *Issuer) signCWT(cc *Claims) ([]byte, error) {
	payload, err := cbor.Marshal(cc)
	if err != nil {
		return nil, err
	}
	msg := cose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(cose.AlgorithmES256)
	msg.Headers.Protected[cose.HeaderLabelKeyID] = []byte(i.kid)
	msg.Headers.Protected[cose.HeaderLabelContentType] = "application/eat+cwt"
	msg.Payload = payload
	if err := msg.Sign(i.o.Rand, nil, i.signer); err != nil {
		return nil, err
	}
	return msg.MarshalCBOR()
}

// Verify checks a token of either form (CWT or JWT) under the issuer's keys at the issuer's
// time: signature under a known key, ES256 only, profile, and validity window.
//
// A token that verified is remembered by the digest of its exact bytes until it expires, so a
// workload that presents one token for many releases pays for one signature check: later calls
// only check the validity window again. Failures are never remembered.
func (i *Issuer) Verify(b []byte) (*Claims, error) {
	now := i.o.Now()
	d := sha256.Sum256(b)
	if c, ok := i.verified.get(d); ok {
		if err := checkClaims(c, now); err != nil {
			return nil, err
		}
		return c, nil
	}
	c, err := VerifyAny(b, i.keys, now)
	if err != nil {
		return nil, err
	}
	i.verified.put(d, c, now)
	cc := *c
	return &cc, nil
}

// VerifyAny verifies a JWT (it starts with the base64url of `{"`) or else a CWT.
func VerifyAny(b []byte, keys map[string]*ecdsa.PublicKey, now time.Time) (*Claims, error) {
	if len(b) > 0 && b[0] == 'e' {
		return VerifyJWT(b, keys, now)
	}
	return Verify(b, keys, now)
}

// Verify checks a CWT against a set of public keys by key ID at time now.
func Verify(b []byte, keys map[string]*ecdsa.PublicKey, now time.Time) (*Claims, error) {
	if len(b) == 0 || len(b) > MaxTokenSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	alg, err := msg.Headers.Protected.Algorithm()
	if err != nil || alg != cose.AlgorithmES256 {
		return nil, fmt.Errorf("%w: protected header algorithm must be ES256", ErrAlgorithm)
	}
	if len(msg.Headers.Unprotected) != 0 {
		return nil, fmt.Errorf("%w: unprotected header not empty", ErrMalformed)
	}
	kid, ok := msg.Headers.Protected[cose.HeaderLabelKeyID].([]byte)
	if !ok {
		return nil, fmt.Errorf("%w: no key ID", ErrMalformed)
	}
	pub, ok := keys[string(kid)]
	if !ok {
		return nil, ErrUnknownKey
	}
	v, err := cose.NewVerifier(cose.AlgorithmES256, pub)
	if err != nil {
		return nil, err
	}
	if err := msg.Verify(nil, v); err != nil {
		return nil, ErrSignature
	}
	var c Claims
	if err := claimsDecMode.Unmarshal(msg.Payload, &c); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	return &c, checkClaims(&c, now)
}

// claimsDecMode decodes CWT claims strictly: no duplicate keys, no unknown fields.
var claimsDecMode, _ = cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, ExtraReturnErrors: cbor.ExtraDecErrorUnknownField}.DecMode()

// MaxVerifiedTokens bounds the tokens an Issuer remembers as verified.
const MaxVerifiedTokens = 8192

// verifiedCache maps the SHA-256 of a token's bytes to the claims it verified to.
type verifiedCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]*Claims
}

// get returns a copy of the claims, so that a caller that changes them changes no one else's.
func (v *verifiedCache) get(d [sha256.Size]byte) (*Claims, bool) {
	v.mu.Lock()
	c, ok := v.m[d]
	v.mu.Unlock()
	if !ok {
		return nil, false
	}
	cc := *c
	return &cc, true
}

func (v *verifiedCache) put(d [sha256.Size]byte, c *Claims, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[[sha256.Size]byte]*Claims{}
	}
	if len(v.m) >= MaxVerifiedTokens {
		for k, e := range v.m {
			if now.Unix() >= e.Expiry {
				delete(v.m, k)
			}
		}
		if len(v.m) >= MaxVerifiedTokens {
			clear(v.m) // only a cache: the next calls verify again
		}
	}
	v.m[d] = c
}

// checkClaims checks what every token must say, whatever its form.
func checkClaims(c *Claims, now time.Time) error {
	if c.Profile != Profile || c.Status != StatusAffirming {
		return fmt.Errorf("%w: profile %q status %q", ErrMalformed, c.Profile, c.Status)
	}
	if now.Unix() >= c.Expiry {
		return fmt.Errorf("%w at %s", ErrExpired, time.Unix(c.Expiry, 0).UTC().Format(time.RFC3339))
	}
	if now.Unix() < c.NotBefore {
		return ErrNotYet
	}
	return nil
}
