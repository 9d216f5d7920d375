package ear

import (
	"crypto/ecdsa"
	"encoding/base64"
)

// JWK is one public key of a JWK Set (RFC 7517, EC keys as in RFC 7518 6.2).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKSet is the document served to web relying parties.
type JWKSet struct {
	Keys []JWK `json:"keys"`
}

// NewJWK returns the JWK of an ES256 public key.
func NewJWK(pub *ecdsa.PublicKey) (JWK, error) {
	b, err := pub.Bytes() // 0x04 ‖ X ‖ Y
	if err != nil {
		return JWK{}, err
	}
	kid, err := KeyID(pub)
	if err != nil {
		return JWK{}, err
	}
	enc := base64.RawURLEncoding
	return JWK{Kty: "EC", Crv: "P-256", X: enc.EncodeToString(b[1:33]), Y: enc.EncodeToString(b[33:]),
		Kid: kid, Alg: "ES256", Use: "sig"}, nil
}
