// Package ear issues and verifies attestation result tokens: EAT Attestation Results (EAR,
// draft-ietf-rats-ear) in the profile that Veraison and Trustee emit, signed ES256 as a CWT
// (COSE_Sign1, RFC 8392) or as a JWT (JWS compact, RFC 7519), with a confirmation claim (RFC 8747
// for CWTs, RFC 7800 for JWTs) that binds the workload's HPKE public key. docs/tokens.md is the
// specification of both forms, with test vectors.
//
// The release calls of trustd accept a token only if it verifies under one of trustd's token
// keys, names trustd's issuer and audience, has not expired, and names the requested key among
// its grants; the release is then sealed to the key in the confirmation claim, so a stolen token
// is useless without the workload's private key.
package ear

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"time"

	"github.com/medicus-cloud/trust/internal/keyfile"
	"github.com/medicus-cloud/trust/release"
	"github.com/veraison/go-cose"
)

// Profile is the EAT profile of our tokens: the EAR profile of Veraison (which Trustee emits
// under an alias), so that EAR libraries and relying parties that speak it accept our tokens.
const Profile = "tag:github.com,2023:veraison/ear"

// StatusAffirming is the EAR trustworthiness status of every token we issue: denials get no token.
const StatusAffirming = "affirming"

// DefaultIssuer is the "iss" claim when none is configured (development only: a deployment
// sets its URL).
const DefaultIssuer = "trustd"

// DefaultDeveloper is the developer of ear.verifier-id.
const DefaultDeveloper = "https://medicus.cloud"

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
	// ErrProfile: the token is not an EAR of our profile, or its status is not affirming.
	ErrProfile = errors.New("token profile not accepted")
	// ErrIssuer: the token's "iss" is not the expected one.
	ErrIssuer = errors.New("token issuer not expected")
	// ErrAudience: the token's "aud" is not the expected one.
	ErrAudience = errors.New("token audience not expected")
)

// Confirmation is the workload's HPKE public key and suite that the token binds.
type Confirmation struct {
	KEM       uint16
	KDF       uint16
	AEAD      uint16
	PublicKey []byte
}

// Claims of a result token, independent of its form (see ear.go for the two encodings).
type Claims struct {
	Issuer    string
	Audience  string
	Expiry    int64
	NotBefore int64
	IssuedAt  int64
	// ID is the token ID: base64url (no padding) of the CWT's cti, the JWT's jti.
	ID           string
	Confirmation Confirmation
	// Profile and Status are filled by Issue and checked by Verify.
	Profile string
	Status  string
	// VerifierBuild and VerifierDeveloper are ear.verifier-id.
	VerifierBuild     string
	VerifierDeveloper string
	// Private claims (namespace "medicus.trust").
	TEE          string
	Measurement  []byte
	Policy       string
	PolicyDigest []byte
	Grants       []release.Grant
	Platform     map[string]string
	// Appraised carries the verified claims the token was issued for, encoded by the issuer
	// (package service) and opaque here, so that every release can re-run the current policy
	// against them on any replica (see service/reappraise.go).
	Appraised []byte
}

// Granted reports whether the token grants name of kind.
func (c *Claims) Granted(kind release.GrantKind, name string) bool {
	for _, g := range c.Grants {
		if g.Kind == kind && g.Name == name {
			return true
		}
	}
	return false
}

// KeyID returns the key ID of a public key: base64url (no padding) of SHA-256 of its SPKI.
func KeyID(pub crypto.PublicKey) (string, error) { return keyfile.ID(pub) }

// Options configure an Issuer.
type Options struct {
	// Key signs new tokens (ECDSA P-256).
	Key *ecdsa.PrivateKey
	// Verify are further public keys whose tokens are still accepted (rotation).
	Verify []*ecdsa.PublicKey
	// Issuer is the "iss" claim (the deployment's URL); default DefaultIssuer. Verify accepts
	// only tokens that name it.
	Issuer string
	// Audience, if set, is the "aud" claim; Verify then accepts only tokens that name it.
	Audience string
	// VerifierBuild is ear.verifier-id's build; default "trustd <module version>".
	VerifierBuild string
	// VerifierDeveloper is ear.verifier-id's developer; default DefaultDeveloper.
	VerifierDeveloper string
	Lifetime          time.Duration
	Now               func() time.Time
	Rand              io.Reader
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
	// verified remembers tokens that verified, by the digest of their exact bytes.
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
	if o.Issuer == "" {
		o.Issuer = DefaultIssuer
	}
	if o.VerifierBuild == "" {
		o.VerifierBuild = "trustd " + moduleVersion()
	}
	if o.VerifierDeveloper == "" {
		o.VerifierDeveloper = DefaultDeveloper
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

func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// KeyID returns the ID of the current signing key.
func (i *Issuer) KeyID() string { return i.kid }

// PublicKeys returns the accepted public keys by key ID.
func (i *Issuer) PublicKeys() map[string]*ecdsa.PublicKey { return i.keys }

// IssuerName returns the "iss" of the tokens it issues.
func (i *Issuer) IssuerName() string { return i.o.Issuer }

// Audience returns the "aud" of the tokens it issues ("" for none).
func (i *Issuer) Audience() string { return i.o.Audience }

// Issue fills the time, ID, issuer, audience, profile, verifier and status claims and signs c as
// a CWT (COSE_Sign1).
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
	cc.Issuer, cc.Audience = i.o.Issuer, i.o.Audience
	cc.IssuedAt, cc.NotBefore, cc.Expiry = now.Unix(), now.Unix(), exp.Unix()
	cc.ID = base64.RawURLEncoding.EncodeToString(id)
	cc.Profile, cc.Status = Profile, StatusAffirming
	cc.VerifierBuild, cc.VerifierDeveloper = i.o.VerifierBuild, i.o.VerifierDeveloper
	return &cc, time.Unix(cc.Expiry, 0), nil
}

// Verify checks a token of either form (CWT or JWT) under the issuer's keys at the issuer's
// time: signature under a known key, ES256 only, profile, validity window, and the issuer's own
// "iss" and "aud".
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
	if err := CheckIssuerAudience(c, i.o.Issuer, i.o.Audience); err != nil {
		return nil, err
	}
	i.verified.put(d, c, now)
	cc := *c
	return &cc, nil
}

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

// CheckIssuerAudience checks "iss" and "aud"; an empty expectation accepts any value.
func CheckIssuerAudience(c *Claims, iss, aud string) error {
	if iss != "" && c.Issuer != iss {
		return fmt.Errorf("%w: %q, want %q", ErrIssuer, c.Issuer, iss)
	}
	if aud != "" && c.Audience != aud {
		return fmt.Errorf("%w: %q, want %q", ErrAudience, c.Audience, aud)
	}
	return nil
}

// VerifyAny verifies a JWT (it starts with the base64url of `{"`) or else a CWT.
func VerifyAny(b []byte, keys map[string]*ecdsa.PublicKey, now time.Time) (*Claims, error) {
	if len(b) > 0 && b[0] == 'e' {
		return VerifyJWT(b, keys, now)
	}
	return Verify(b, keys, now)
}

// checkClaims checks what every token must say, whatever its form.
func checkClaims(c *Claims, now time.Time) error {
	if c.Profile != Profile {
		return fmt.Errorf("%w: eat_profile %q, want %q", ErrProfile, c.Profile, Profile)
	}
	if c.Status != StatusAffirming {
		return fmt.Errorf("%w: ear.status %q, want %q", ErrProfile, c.Status, StatusAffirming)
	}
	if now.Unix() >= c.Expiry {
		return fmt.Errorf("%w at %s", ErrExpired, time.Unix(c.Expiry, 0).UTC().Format(time.RFC3339))
	}
	if now.Unix() < c.NotBefore {
		return ErrNotYet
	}
	return nil
}
