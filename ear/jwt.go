package ear

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// JWTs carry the same claims as CWTs, under their JSON names (ear.go), signed ES256 in the JWS
// compact form. The header is exactly {"alg":"ES256","kid":KID,"typ":"JWT"} and the payload
// exactly what encoding/json writes for the claims: verification insists on both, so there is one
// encoding of each token and no header parameter (jku, x5u, crit, ...) is ever honoured.

// JWTHeader is the only JWT header a token has: {"alg":"ES256","kid":KID,"typ":"JWT"}.
type JWTHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// MarshalJWTClaims encodes claims as the payload of a JWT; the issuer signs it.
func MarshalJWTClaims(c *Claims) ([]byte, error) { return json.Marshal(toJSON(c)) }

// VerifyJWT checks a JWT against a set of public keys by key ID at time now. It does not check
// "iss" and "aud" (see CheckIssuerAudience).
func VerifyJWT(b []byte, keys map[string]*ecdsa.PublicKey, now time.Time) (*Claims, error) {
	if len(b) == 0 || len(b) > MaxTokenSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	parts := strings.Split(string(b), ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: JWT has %d parts, want 3", ErrMalformed, len(parts))
	}
	enc := base64.RawURLEncoding.Strict()
	hb, err := enc.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("%w: JWT header: %v", ErrMalformed, err)
	}
	var h JWTHeader
	if err := strictJSON(hb, &h); err != nil {
		return nil, fmt.Errorf("%w: JWT header: %v", ErrMalformed, err)
	}
	// The algorithm is ours to choose, never the token's: "none", HS256 (with the public key
	// as an HMAC secret) and everything else are refused before anything else is looked at.
	if h.Alg != "ES256" {
		return nil, fmt.Errorf("%w: JWT alg %q, want ES256", ErrAlgorithm, h.Alg)
	}
	if canon, _ := json.Marshal(JWTHeader{Alg: "ES256", Kid: h.Kid, Typ: "JWT"}); !bytes.Equal(canon, hb) {
		return nil, fmt.Errorf("%w: JWT header is not {\"alg\":\"ES256\",\"kid\":...,\"typ\":\"JWT\"}", ErrMalformed)
	}
	pub, ok := keys[h.Kid]
	if !ok {
		return nil, ErrUnknownKey
	}
	sig, err := enc.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, fmt.Errorf("%w: JWT signature encoding", ErrSignature)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, sum[:], r, s) {
		return nil, ErrSignature
	}
	pb, err := enc.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("%w: JWT payload: %v", ErrMalformed, err)
	}
	var p struct {
		Profile string `json:"eat_profile"`
	}
	if err := json.Unmarshal(pb, &p); err != nil {
		return nil, fmt.Errorf("%w: JWT claims: %v", ErrMalformed, err)
	}
	if p.Profile != Profile {
		return nil, fmt.Errorf("%w: eat_profile %q, want %q", ErrProfile, p.Profile, Profile)
	}
	var w jsonClaims
	if err := strictJSON(pb, &w); err != nil {
		return nil, fmt.Errorf("%w: JWT claims: %v", ErrMalformed, err)
	}
	if canon, err := json.Marshal(&w); err != nil || !bytes.Equal(canon, pb) {
		return nil, fmt.Errorf("%w: JWT claims are not in canonical form", ErrMalformed)
	}
	c, err := fromJSON(&w)
	if err != nil {
		return nil, err
	}
	return c, CheckClaims(c, now)
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}

// DecodeJWTClaims decodes a JWT payload (JSON, not base64) that MarshalJWTClaims wrote, without
// a signature: only for the issuer, which remembers the claims of a token it has just signed.
func DecodeJWTClaims(payload []byte) (*Claims, error) {
	var w jsonClaims
	if err := strictJSON(payload, &w); err != nil {
		return nil, fmt.Errorf("%w: JWT claims: %v", ErrMalformed, err)
	}
	return fromJSON(&w)
}
