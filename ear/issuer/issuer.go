// Package issuer issues trustd's attestation result tokens (package ear holds their claims
// and verification): it signs claims as a CWT and a JWT under the current key of a key
// directory, verifies presented tokens under every key it accepts, remembering those that
// verified, and publishes its keys. Only trustd links it; workloads and relying parties use
// ear or sdk/token.
package issuer

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"time"

	"github.com/medicus-cloud/trust/ear"
	"github.com/veraison/go-cose"
)

// DefaultLifetime of a token.
const DefaultLifetime = 5 * time.Minute

// DefaultDeveloper is the developer of ear.verifier-id.
const DefaultDeveloper = "https://medicus.cloud"

// DefaultIssuer is the "iss" claim when none is configured (development only: a deployment
// sets its URL).
const DefaultIssuer = "trustd"

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
	// NotAfter optionally says until when each key (by key ID) is published and accepted;
	// KeySet.Options fills it. Verify refuses a retired key from its NotAfter on.
	NotAfter map[string]time.Time
}

// Issuer signs and verifies tokens.
type Issuer struct {
	o      Options
	kid    string
	signer cose.Signer
	keys   map[string]*ecdsa.PublicKey
	// current holds the signing key's public key alone.
	current map[string]*ecdsa.PublicKey
	// verified remembers tokens that verified, by the digest of their exact bytes.
	verified verifiedCache
}

// New returns an Issuer.
func New(o Options) (*Issuer, error) {
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
		kid, err := ear.KeyID(pub)
		if err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
		i.keys[kid] = pub
	}
	i.kid, _ = ear.KeyID(&o.Key.PublicKey)
	i.current = map[string]*ecdsa.PublicKey{i.kid: &o.Key.PublicKey}
	return i, nil
}

// retired returns the retired keys still accepted at now: those whose NotAfter, if known, is
// after now.
func (i *Issuer) retired(now time.Time) map[string]*ecdsa.PublicKey {
	out := map[string]*ecdsa.PublicKey{}
	for kid, pub := range i.keys {
		if na, ok := i.o.NotAfter[kid]; kid != i.kid && (!ok || now.Before(na)) {
			out[kid] = pub
		}
	}
	return out
}

func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// ear.KeyID returns the ID of the current signing key.
func (i *Issuer) KeyID() string { return i.kid }

// PublicKeys returns the accepted public keys by key ID.
func (i *Issuer) PublicKeys() map[string]*ecdsa.PublicKey { return i.keys }

// IssuerName returns the "iss" of the tokens it issues.
func (i *Issuer) IssuerName() string { return i.o.Issuer }

// Audience returns the "aud" of the tokens it issues ("" for none).
func (i *Issuer) Audience() string { return i.o.Audience }

// Issue fills the time, ID, issuer, audience, profile, verifier and status claims and signs c as
// a CWT (COSE_Sign1).
func (i *Issuer) Issue(c *ear.Claims) ([]byte, time.Time, error) {
	cc, exp, err := i.fill(c)
	if err != nil {
		return nil, time.Time{}, err
	}
	b, err := i.signCWT(cc)
	return b, exp, err
}

// IssueJWT is Issue for web relying parties: the same claims as a JWT (JWS compact, ES256).
func (i *Issuer) IssueJWT(c *ear.Claims) ([]byte, time.Time, error) {
	cc, exp, err := i.fill(c)
	if err != nil {
		return nil, time.Time{}, err
	}
	b, err := i.signJWT(cc)
	return b, exp, err
}

// IssueBoth signs one set of claims (one token ID, one expiry) as a CWT and as a JWT.
func (i *Issuer) IssueBoth(c *ear.Claims) (cwt, jwt []byte, exp time.Time, err error) {
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

func (i *Issuer) fill(c *ear.Claims) (*ear.Claims, time.Time, error) {
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
	cc.Profile, cc.Status = ear.Profile, ear.StatusAffirming
	cc.VerifierBuild, cc.VerifierDeveloper = i.o.VerifierBuild, i.o.VerifierDeveloper
	return &cc, time.Unix(cc.Expiry, 0), nil
}

// Verify checks a token of either form (CWT or JWT) under the issuer's keys at the issuer's
// time: signature under a known key, ES256 only, profile, validity window, and the issuer's own
// "iss" and "aud".
//
// A token that verified under the current key, or that this issuer signed, is remembered by the digest of its exact
// bytes until it expires, so a workload that presents one token for many releases pays for at
// most one signature check: later calls only check the validity window again. Failures are
// never remembered.
func (i *Issuer) Verify(b []byte) (*ear.Claims, error) {
	now := i.o.Now()
	d := sha256.Sum256(b)
	if c, ok := i.verified.get(d); ok {
		if err := ear.CheckClaims(c, now); err != nil {
			return nil, err
		}
		return c, nil
	}
	c, err := ear.VerifyAny(b, i.current, now)
	retired := false
	if errors.Is(err, ear.ErrUnknownKey) && len(i.keys) > 1 {
		// A retired key verifies only until its NotAfter, as relying parties see it published;
		// its tokens are not remembered, so that none outlives that time in the cache.
		c, err = ear.VerifyAny(b, i.retired(now), now)
		retired = true
	}
	if err != nil {
		return nil, err
	}
	if err := ear.CheckIssuerAudience(c, i.o.Issuer, i.o.Audience); err != nil {
		return nil, err
	}
	if !retired {
		i.verified.put(d, c, now)
	}
	cc := *c
	return &cc, nil
}

// MaxVerifiedTokens bounds the tokens an Issuer remembers as verified.
const MaxVerifiedTokens = 8192

// verifiedCache maps the SHA-256 of a token's bytes to the claims it verified to.
type verifiedCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]*ear.Claims
}

// get returns a copy of the claims, so that a caller that changes them changes no one else's.
func (v *verifiedCache) get(d [sha256.Size]byte) (*ear.Claims, bool) {
	v.mu.Lock()
	c, ok := v.m[d]
	v.mu.Unlock()
	if !ok {
		return nil, false
	}
	cc := *c
	return &cc, true
}

func (v *verifiedCache) put(d [sha256.Size]byte, c *ear.Claims, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[[sha256.Size]byte]*ear.Claims{}
	}
	if len(v.m) >= MaxVerifiedTokens {
		for k, e := range v.m {
			if now.Unix() >= e.Expiry {
				delete(v.m, k)
			}
		}
		// Only a cache: drop an eighth, any (map order), and those verify again.
		for k := range v.m {
			if len(v.m) < MaxVerifiedTokens-MaxVerifiedTokens/8 {
				break
			}
			delete(v.m, k)
		}
	}
	v.m[d] = c
}

func (i *Issuer) signCWT(cc *ear.Claims) ([]byte, error) {
	payload, err := ear.MarshalCWTClaims(cc)
	if err != nil {
		return nil, err
	}
	msg := cose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(cose.AlgorithmES256)
	msg.Headers.Protected[cose.HeaderLabelKeyID] = []byte(i.kid)
	msg.Headers.Protected[cose.HeaderLabelContentType] = ear.ContentTypeCWT
	msg.Payload = payload
	if err := msg.Sign(i.o.Rand, nil, i.signer); err != nil {
		return nil, err
	}
	b, err := msg.MarshalCBOR()
	if err != nil {
		return nil, err
	}
	return b, i.remember(b, payload, ear.DecodeCWTClaims)
}

// remember puts a token just signed into the verified cache, with its claims decoded from the
// payload as Verify would decode them, so that its first release on this replica pays for no
// signature check: a token this issuer signed a moment ago needs none.
func (i *Issuer) remember(token, payload []byte, decode func([]byte) (*ear.Claims, error)) error {
	c, err := decode(payload)
	if err != nil {
		return fmt.Errorf("token: the claims just signed do not decode: %w", err)
	}
	i.verified.put(sha256.Sum256(token), c, i.o.Now())
	return nil
}

func (i *Issuer) signJWT(cc *ear.Claims) ([]byte, error) {
	h, err := json.Marshal(ear.JWTHeader{Alg: "ES256", Kid: i.kid, Typ: "JWT"})
	if err != nil {
		return nil, err
	}
	p, err := ear.MarshalJWTClaims(cc)
	if err != nil {
		return nil, err
	}
	b, err := i.signJWS(h, p)
	if err != nil {
		return nil, err
	}
	return b, i.remember(b, p, ear.DecodeJWTClaims)
}

func (i *Issuer) signJWS(h, p []byte) ([]byte, error) {
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString(h) + "." + enc.EncodeToString(p)
	sum := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(i.o.Rand, i.o.Key, sum[:])
	if err != nil {
		return nil, err
	}
	// JWS ES256 signatures are R and S as fixed 32-byte big-endian integers (RFC 7518 3.4).
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return []byte(signed + "." + enc.EncodeToString(sig)), nil
}
