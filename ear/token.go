// Package ear holds the claims of attestation result tokens and verifies them: EAT Attestation Results (EAR,
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
	"errors"
	"fmt"
	"time"

	"github.com/medicus-cloud/trust/internal/keyfile"
	"github.com/medicus-cloud/trust/release"
)

// Profile is the EAT profile of our tokens: the EAR profile of Veraison (which Trustee emits
// under an alias), so that EAR libraries and relying parties that speak it accept our tokens.
const Profile = "tag:github.com,2023:veraison/ear"

// StatusAffirming is the EAR trustworthiness status of every token we issue: denials get no token.
const StatusAffirming = "affirming"

// DefaultKeep is how long trustd keeps accepting and publishing a retired token key: longer
// than the longest token lifetime (1h) plus a relying party's key-set cache.
const DefaultKeep = 2 * time.Hour

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

// CheckClaims checks what every token must say, whatever its form, at time now: profile,
// status and validity window.
func CheckClaims(c *Claims, now time.Time) error {
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
