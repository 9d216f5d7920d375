// Package challenge issues and checks the stateless attestation nonces of DESIGN.md:
// 16 random bytes, an 8-byte expiry (Unix seconds, big-endian) and HMAC-SHA256 over both under a
// deployment key. Replicas share only the key; two keys may be active during rotation.
//
// A nonce proves freshness, not exclusivity: it may be used more than once before it expires.
// That gains an attacker nothing, because every release is sealed to the key bound in the report.
package challenge

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Size is the length of a nonce.
const Size = 16 + 8 + sha256.Size

// MaxLifetime bounds how long a nonce may live.
const MaxLifetime = 5 * time.Minute

// DefaultClockSkew is how far, by default, the clock of the replica that issued a nonce may run
// ahead of the one that checks it.
const DefaultClockSkew = 30 * time.Second

// KeySize is the length of a nonce key.
const KeySize = 32

// Errors from Check. The service maps both to Unauthenticated.
var (
	ErrInvalid = errors.New("nonce is not one of ours")
	ErrExpired = errors.New("nonce expired")
)

// Options configure an Issuer. The zero value of every optional field is safe.
type Options struct {
	// Keys: the first issues nonces; every key is accepted when checking (rotation).
	Keys [][]byte
	// Lifetime of a nonce; zero means MaxLifetime, and more than MaxLifetime is an error.
	Lifetime time.Duration
	// ClockSkew is how far another replica's clock may run ahead of this one's: a nonce whose
	// expiry lies up to MaxLifetime+ClockSkew ahead is accepted. Zero means DefaultClockSkew;
	// it must stay below MaxLifetime. A nonce is never accepted after its own expiry, so a
	// checker whose clock runs ahead merely sees the nonce expire that much earlier.
	ClockSkew time.Duration
	// Now and Rand default to the real clock and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
}

// Issuer issues and checks nonces.
type Issuer struct {
	keys     [][]byte
	lifetime time.Duration
	skew     time.Duration
	now      func() time.Time
	rand     io.Reader
}

// New returns an Issuer.
func New(o Options) (*Issuer, error) {
	if len(o.Keys) == 0 {
		return nil, errors.New("challenge: no nonce key")
	}
	for i, k := range o.Keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("challenge: nonce key %d is %d bytes, want %d", i, len(k), KeySize)
		}
	}
	if o.Lifetime == 0 {
		o.Lifetime = MaxLifetime
	}
	if o.Lifetime < 0 || o.Lifetime > MaxLifetime {
		return nil, fmt.Errorf("challenge: lifetime %v outside (0, %v]", o.Lifetime, MaxLifetime)
	}
	if o.ClockSkew == 0 {
		o.ClockSkew = DefaultClockSkew
	}
	if o.ClockSkew < 0 || o.ClockSkew >= MaxLifetime {
		return nil, fmt.Errorf("challenge: clock skew %v outside (0, %v)", o.ClockSkew, MaxLifetime)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	return &Issuer{keys: o.Keys, lifetime: o.Lifetime, skew: o.ClockSkew, now: o.Now, rand: o.Rand}, nil
}

// Issue returns a fresh nonce and its expiry.
func (i *Issuer) Issue() ([]byte, time.Time, error) {
	n := make([]byte, 24, Size)
	if _, err := io.ReadFull(i.rand, n[:16]); err != nil {
		return nil, time.Time{}, fmt.Errorf("challenge: randomness: %w", err)
	}
	exp := i.now().Add(i.lifetime).Truncate(time.Second)
	binary.BigEndian.PutUint64(n[16:24], uint64(exp.Unix()))
	return mac(i.keys[0], n), exp, nil
}

// Check verifies the MAC under any active key and that the nonce has not expired.
func (i *Issuer) Check(n []byte) error {
	if len(n) != Size {
		return fmt.Errorf("%w: %d bytes, want %d", ErrInvalid, len(n), Size)
	}
	ok := false
	for _, k := range i.keys {
		if hmac.Equal(mac(k, n[:24])[24:], n[24:]) {
			ok = true
		}
	}
	if !ok {
		return ErrInvalid
	}
	exp := time.Unix(int64(binary.BigEndian.Uint64(n[16:24])), 0)
	now := i.now()
	if !now.Before(exp) {
		return fmt.Errorf("%w at %s", ErrExpired, exp.UTC().Format(time.RFC3339))
	}
	// A nonce that claims to live longer than we ever issue, even on a replica whose clock runs
	// ahead by the accepted skew, was not made by a sane issuer.
	if exp.Sub(now) > MaxLifetime+i.skew {
		return fmt.Errorf("%w: expiry too far in the future", ErrInvalid)
	}
	return nil
}

func mac(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("medicus-trust/v1 nonce"))
	m.Write(body[:24])
	return m.Sum(body[:24:24])
}
