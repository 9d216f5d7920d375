// Package token verifies Medicus Trust attestation result tokens offline, for relying parties:
// given trustd's public token keys (its JWK Set or its GetTokenKeys response) it checks a
// token in either form, CWT (COSE_Sign1) or JWT, and returns its claims.
//
// Verification accepts only ES256 under a key of the set, only within the token's validity
// window, only EAR tokens (docs/tokens.md) with an "affirming" status, and, when Options name
// them, only tokens of the expected issuer and audience. Everything
// else fails with an error that errors.Is matches against one of the Err values below.
//
// It is not for issuing tokens (that is trustd's token package) and it does not fetch keys:
// fetch and cache them as you like, and refresh them at least every DefaultKeep.
package token

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/ear"
)

// Claims are the claims of a verified token.
type Claims = ear.Claims

// Verification errors.
var (
	ErrMalformed  = ear.ErrMalformed
	ErrSignature  = ear.ErrSignature
	ErrUnknownKey = ear.ErrUnknownKey
	ErrExpired    = ear.ErrExpired
	ErrNotYet     = ear.ErrNotYet
	ErrAlgorithm  = ear.ErrAlgorithm
	// ErrProfile: not an EAR of the Medicus profile with an affirming status.
	ErrProfile = ear.ErrProfile
	// ErrIssuer: the token's "iss" is not the one expected.
	ErrIssuer = ear.ErrIssuer
	// ErrAudience: the token's "aud" is not the one expected.
	ErrAudience = ear.ErrAudience
	// ErrKeySet: the key set itself is unusable.
	ErrKeySet = errors.New("token key set invalid")
)

// DefaultKeep is how long trustd keeps accepting a retired key.
const DefaultKeep = ear.DefaultKeep

// MaxKeySetSize bounds ParseJWKS.
const MaxKeySetSize = 64 << 10

// Keys is a set of trustd token public keys.
type Keys struct {
	keys     map[string]*ecdsa.PublicKey
	notAfter map[string]time.Time
}

// ParseJWKS parses trustd's JWK Set. It is strict: every key must be an ES256 P-256 signing key
// whose kid is the base64url SHA-256 of its SubjectPublicKeyInfo, and unknown members are errors.
func ParseJWKS(b []byte) (*Keys, error) {
	if len(b) > MaxKeySetSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrKeySet, len(b))
	}
	var set ear.JWKSet
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&set); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeySet, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the key set", ErrKeySet)
	}
	k := &Keys{keys: map[string]*ecdsa.PublicKey{}, notAfter: map[string]time.Time{}}
	for i, j := range set.Keys {
		if j.Kty != "EC" || j.Crv != "P-256" || j.Alg != "ES256" || j.Use != "sig" {
			return nil, fmt.Errorf("%w: keys[%d]: kty %q crv %q alg %q use %q, want EC P-256 ES256 sig", ErrKeySet, i, j.Kty, j.Crv, j.Alg, j.Use)
		}
		enc := base64.RawURLEncoding.Strict()
		x, errx := enc.DecodeString(j.X)
		y, erry := enc.DecodeString(j.Y)
		if errx != nil || erry != nil || len(x) != 32 || len(y) != 32 {
			return nil, fmt.Errorf("%w: keys[%d]: x and y must be 32 bytes of base64url", ErrKeySet, i)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, fmt.Errorf("%w: keys[%d]: %v", ErrKeySet, i, err)
		}
		if err := k.add(i, j.Kid, pub); err != nil {
			return nil, err
		}
	}
	return k, k.check()
}

// FromTokenKeys takes the keys of trustd's GetTokenKeys response.
func FromTokenKeys(r *pb.GetTokenKeysResponse) (*Keys, error) {
	k := &Keys{keys: map[string]*ecdsa.PublicKey{}, notAfter: map[string]time.Time{}}
	for i, tk := range r.GetKeys() {
		if tk.GetAlgorithm() != "ES256" {
			return nil, fmt.Errorf("%w: keys[%d]: algorithm %q, want ES256", ErrKeySet, i, tk.GetAlgorithm())
		}
		p, err := x509.ParsePKIXPublicKey(tk.GetPublicKey())
		if err != nil {
			return nil, fmt.Errorf("%w: keys[%d]: %v", ErrKeySet, i, err)
		}
		pub, ok := p.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: keys[%d]: not a P-256 key", ErrKeySet, i)
		}
		if err := k.add(i, tk.GetKid(), pub); err != nil {
			return nil, err
		}
		if tk.GetNotAfter() != nil {
			if err := tk.GetNotAfter().CheckValid(); err != nil {
				return nil, fmt.Errorf("%w: keys[%d]: not_after: %v", ErrKeySet, i, err)
			}
			k.notAfter[tk.GetKid()] = tk.GetNotAfter().AsTime()
		}
	}
	return k, k.check()
}

func (k *Keys) add(i int, kid string, pub *ecdsa.PublicKey) error {
	want, err := ear.KeyID(pub)
	if err != nil {
		return fmt.Errorf("%w: keys[%d]: %v", ErrKeySet, i, err)
	}
	if kid != want {
		return fmt.Errorf("%w: keys[%d]: kid %q is not the key's ID %q", ErrKeySet, i, kid, want)
	}
	if _, dup := k.keys[kid]; dup {
		return fmt.Errorf("%w: keys[%d]: kid %q twice", ErrKeySet, i, kid)
	}
	k.keys[kid] = pub
	return nil
}

func (k *Keys) check() error {
	if len(k.keys) == 0 {
		return fmt.Errorf("%w: no keys", ErrKeySet)
	}
	return nil
}

// Options configure Verify; the zero value checks against the current time and any ear.
type Options struct {
	// Now is the verification time; default time.Now.
	Now func() time.Time
	// Issuer, if set, must equal the token's "iss": trustd's configured token issuer (its URL).
	Issuer string
	// Audience, if set, must equal the token's "aud": trustd's configured token audience.
	Audience string
}

// Verify checks a CWT or a JWT (told apart by its first byte) and returns its claims.
func (k *Keys) Verify(tok []byte, o Options) (*Claims, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	t := now()
	// A retired key whose time is up no longer verifies anything.
	keys := make(map[string]*ecdsa.PublicKey, len(k.keys))
	for kid, pub := range k.keys {
		if na, ok := k.notAfter[kid]; !ok || t.Before(na) {
			keys[kid] = pub
		}
	}
	c, err := ear.VerifyAny(tok, keys, t)
	if err != nil {
		return nil, err
	}
	if err := ear.CheckIssuerAudience(c, o.Issuer, o.Audience); err != nil {
		return nil, err
	}
	return c, nil
}
