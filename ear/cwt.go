package ear

import (
	"crypto/ecdsa"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// ContentTypeCWT is the COSE content type of our CWTs.
const ContentTypeCWT = "application/eat+cwt"

// MarshalCWTClaims encodes claims as the payload of a CWT (deterministic CBOR); the issuer
// signs it.
func MarshalCWTClaims(c *Claims) ([]byte, error) {
	w, err := toCWT(c)
	if err != nil {
		return nil, fmt.Errorf("ear: %w", err)
	}
	return cborEnc.Marshal(w)
}

// Verify checks a CWT against a set of public keys by key ID at time now. It does not check
// "iss" and "aud" (see CheckIssuerAudience).
func Verify(b []byte, keys map[string]*ecdsa.PublicKey, now time.Time) (*Claims, error) {
	if len(b) == 0 || len(b) > MaxTokenSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// The algorithm is ours to choose: only ES256 in the protected header, whatever the key.
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
	// The profile first, leniently: an EAR of another profile is refused as such.
	var p struct {
		Profile string `cbor:"265,keyasint"`
	}
	if err := cbor.Unmarshal(msg.Payload, &p); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if p.Profile != Profile {
		return nil, fmt.Errorf("%w: eat_profile %q, want %q", ErrProfile, p.Profile, Profile)
	}
	c, err := DecodeCWTClaims(msg.Payload)
	if err != nil {
		return nil, err
	}
	return c, CheckClaims(c, now)
}

// DecodeCWTClaims decodes a CWT payload that MarshalCWTClaims wrote, without a signature check:
// Verify calls it once the signature verified, and the issuer for a token it has just signed.
func DecodeCWTClaims(payload []byte) (*Claims, error) {
	var w cwtClaims
	if err := cborDec.Unmarshal(payload, &w); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	return fromCWT(&w)
}
