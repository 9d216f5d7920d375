package ear

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/medicus-cloud/trust/release"
)

// The two wire forms of one EAR (docs/tokens.md). Integer labels in CBOR follow the CWT (RFC
// 8392), EAT (RFC 9711) and EAR registries; JSON names are the registered JWT and EAR names.
// Binary values are byte strings in CBOR and base64url without padding in JSON. Our own claims
// live under one private claim, "medicus.trust" (CBOR -70000).

// KEMX25519 is HPKE's DHKEM(X25519, HKDF-SHA256): its key is a COSE_Key / JWK in cnf. Every
// other KEM (the hybrid ML-KEM suite) has no registered key type: cnf carries a thumbprint as its
// "kid" and the key travels in the private claim.
const KEMX25519 = 0x0020

// Thumbprint of a workload key without a COSE/JOSE key type: SHA-256(uint16 KEM ‖ public key).
func Thumbprint(kem uint16, pk []byte) []byte {
	h := sha256.New()
	h.Write(binary.BigEndian.AppendUint16(nil, kem))
	h.Write(pk)
	return h.Sum(nil)
}

// COSE and JOSE constants for an X25519 key (RFC 9053, RFC 8037).
const (
	coseKtyOKP   = 1
	coseCrvX2559 = 4
)

// Trust vector claims (draft-ietf-rats-ar4si): 2 is the affirming value of each.
type cwtTrustVector struct {
	InstanceIdentity int8 `cbor:"0,keyasint,omitempty"`
	Configuration    int8 `cbor:"1,keyasint,omitempty"`
	Executables      int8 `cbor:"2,keyasint,omitempty"`
	Hardware         int8 `cbor:"4,keyasint,omitempty"`
	RuntimeOpaque    int8 `cbor:"5,keyasint,omitempty"`
}

type jsonTrustVector struct {
	InstanceIdentity int8 `json:"instance-identity,omitempty"`
	Configuration    int8 `json:"configuration,omitempty"`
	Executables      int8 `json:"executables,omitempty"`
	Hardware         int8 `json:"hardware,omitempty"`
	RuntimeOpaque    int8 `json:"runtime-opaque,omitempty"`
}

// trustVector is what an affirming appraisal of tee says: the evidence is signed by a genuine
// instance whose launch measurement and configuration the policy approved; for hardware TEEs also
// genuine hardware and encrypted memory. The simulated TEE claims neither.
func trustVector(tee string) cwtTrustVector {
	v := cwtTrustVector{InstanceIdentity: 2, Configuration: 2, Executables: 2}
	switch tee {
	case "sev-snp", "tdx", "sgx":
		v.Hardware, v.RuntimeOpaque = 2, 2
	}
	return v
}

// earStatusAffirming is ear.status "affirming" in CBOR.
const earStatusAffirming = 2

type cwtAppraisal struct {
	Status      int            `cbor:"1000,keyasint"`
	TrustVector cwtTrustVector `cbor:"1001,keyasint"`
	PolicyID    string         `cbor:"1003,keyasint"`
}

type jsonAppraisal struct {
	Status      string          `json:"ear.status"`
	TrustVector jsonTrustVector `json:"ear.trustworthiness-vector"`
	PolicyID    string          `json:"ear.appraisal-policy-id"`
}

type cwtVerifierID struct {
	Developer string `cbor:"0,keyasint"`
	Build     string `cbor:"1,keyasint"`
}

type jsonVerifierID struct {
	Build     string `json:"build"`
	Developer string `json:"developer"`
}

type coseKey struct {
	Kty int    `cbor:"1,keyasint"`
	Crv int    `cbor:"-1,keyasint"`
	X   []byte `cbor:"-2,keyasint"`
}

type cwtCnf struct {
	Key *coseKey `cbor:"1,keyasint,omitempty"`
	Kid []byte   `cbor:"3,keyasint,omitempty"`
}

type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   b64    `json:"x"`
}

type jsonCnf struct {
	JWK *jwk `json:"jwk,omitempty"`
	Kid b64  `json:"kid,omitempty"`
}

type suite struct {
	KEM  uint16 `cbor:"1,keyasint" json:"kem"`
	KDF  uint16 `cbor:"2,keyasint" json:"kdf"`
	AEAD uint16 `cbor:"3,keyasint" json:"aead"`
}

type cwtPrivate struct {
	TEE          string            `cbor:"1,keyasint"`
	Measurement  []byte            `cbor:"2,keyasint,omitempty"`
	Policy       string            `cbor:"3,keyasint"`
	PolicyDigest []byte            `cbor:"4,keyasint,omitempty"`
	Grants       []release.Grant   `cbor:"5,keyasint,omitempty"`
	Platform     map[string]string `cbor:"6,keyasint,omitempty"`
	Suite        suite             `cbor:"7,keyasint"`
	WorkloadKey  []byte            `cbor:"8,keyasint,omitempty"`
	Appraised    []byte            `cbor:"9,keyasint,omitempty"`
}

type jsonPrivate struct {
	TEE          string            `json:"tee"`
	Measurement  b64               `json:"measurement,omitempty"`
	Policy       string            `json:"policy"`
	PolicyDigest b64               `json:"policy_digest,omitempty"`
	Grants       []release.Grant   `json:"grants,omitempty"`
	Platform     map[string]string `json:"platform,omitempty"`
	Suite        suite             `json:"hpke"`
	WorkloadKey  b64               `json:"workload_key,omitempty"`
	Appraised    b64               `json:"appraised,omitempty"`
}

type cwtClaims struct {
	Issuer     string                  `cbor:"1,keyasint,omitempty"`
	Audience   string                  `cbor:"3,keyasint,omitempty"`
	Expiry     int64                   `cbor:"4,keyasint"`
	NotBefore  int64                   `cbor:"5,keyasint"`
	IssuedAt   int64                   `cbor:"6,keyasint"`
	ID         []byte                  `cbor:"7,keyasint"`
	Cnf        cwtCnf                  `cbor:"8,keyasint"`
	Profile    string                  `cbor:"265,keyasint"`
	Submods    map[string]cwtAppraisal `cbor:"266,keyasint"`
	VerifierID cwtVerifierID           `cbor:"1004,keyasint"`
	Medicus    cwtPrivate              `cbor:"-70000,keyasint"`
}

type jsonClaims struct {
	Profile    string                   `json:"eat_profile"`
	Issuer     string                   `json:"iss,omitempty"`
	Audience   string                   `json:"aud,omitempty"`
	IssuedAt   int64                    `json:"iat"`
	NotBefore  int64                    `json:"nbf"`
	Expiry     int64                    `json:"exp"`
	ID         string                   `json:"jti"`
	Cnf        jsonCnf                  `json:"cnf"`
	VerifierID jsonVerifierID           `json:"ear.verifier-id"`
	Submods    map[string]jsonAppraisal `json:"submods"`
	Medicus    jsonPrivate              `json:"medicus.trust"`
}

// b64 is a byte string in JSON: base64url without padding, strictly decoded.
type b64 []byte

func (b b64) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.RawURLEncoding.EncodeToString(b))
}

func (b *b64) UnmarshalJSON(d []byte) error {
	var s string
	if err := json.Unmarshal(d, &s); err != nil {
		return err
	}
	v, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return fmt.Errorf("not base64url without padding: %v", err)
	}
	*b = v
	return nil
}

// submodName is the name of the one appraisal in a token: the TEE that produced the evidence.
func submodName(tee string) string {
	if tee == "" {
		return "tee"
	}
	return tee
}

// PolicyID is ear.appraisal-policy-id: the policy that matched, in the bundle of that digest.
func PolicyID(policy string, digest []byte) string {
	return "medicus-policy:" + policy + "@sha256:" + hex.EncodeToString(digest)
}

func toCWT(c *Claims) (*cwtClaims, error) {
	id, err := base64.RawURLEncoding.Strict().DecodeString(c.ID)
	if err != nil {
		return nil, fmt.Errorf("token ID: %v", err)
	}
	w := &cwtClaims{Issuer: c.Issuer, Audience: c.Audience, Expiry: c.Expiry, NotBefore: c.NotBefore, IssuedAt: c.IssuedAt,
		ID: id, Profile: c.Profile,
		Submods: map[string]cwtAppraisal{submodName(c.TEE): {Status: earStatusAffirming, TrustVector: trustVector(c.TEE),
			PolicyID: PolicyID(c.Policy, c.PolicyDigest)}},
		VerifierID: cwtVerifierID{Developer: c.VerifierDeveloper, Build: c.VerifierBuild},
		Medicus: cwtPrivate{TEE: c.TEE, Measurement: c.Measurement, Policy: c.Policy, PolicyDigest: c.PolicyDigest,
			Grants: c.Grants, Platform: c.Platform, Suite: suite{c.Confirmation.KEM, c.Confirmation.KDF, c.Confirmation.AEAD},
			Appraised: c.Appraised}}
	if c.Status != StatusAffirming {
		return nil, fmt.Errorf("status %q", c.Status)
	}
	if c.Confirmation.KEM == KEMX25519 {
		w.Cnf.Key = &coseKey{Kty: coseKtyOKP, Crv: coseCrvX2559, X: c.Confirmation.PublicKey}
	} else {
		w.Cnf.Kid = Thumbprint(c.Confirmation.KEM, c.Confirmation.PublicKey)
		w.Medicus.WorkloadKey = c.Confirmation.PublicKey
	}
	return w, nil
}

func toJSON(c *Claims) *jsonClaims {
	tv := trustVector(c.TEE)
	w := &jsonClaims{Profile: c.Profile, Issuer: c.Issuer, Audience: c.Audience, IssuedAt: c.IssuedAt, NotBefore: c.NotBefore,
		Expiry: c.Expiry, ID: c.ID,
		VerifierID: jsonVerifierID{Build: c.VerifierBuild, Developer: c.VerifierDeveloper},
		Submods: map[string]jsonAppraisal{submodName(c.TEE): {Status: c.Status, TrustVector: jsonTrustVector(tv),
			PolicyID: PolicyID(c.Policy, c.PolicyDigest)}},
		Medicus: jsonPrivate{TEE: c.TEE, Measurement: c.Measurement, Policy: c.Policy, PolicyDigest: c.PolicyDigest,
			Grants: c.Grants, Platform: c.Platform, Suite: suite{c.Confirmation.KEM, c.Confirmation.KDF, c.Confirmation.AEAD},
			Appraised: c.Appraised}}
	if c.Confirmation.KEM == KEMX25519 {
		w.Cnf.JWK = &jwk{Kty: "OKP", Crv: "X25519", X: c.Confirmation.PublicKey}
	} else {
		w.Cnf.Kid = Thumbprint(c.Confirmation.KEM, c.Confirmation.PublicKey)
		w.Medicus.WorkloadKey = c.Confirmation.PublicKey
	}
	return w
}

// one returns the single appraisal of a token: we issue exactly one.
func one[A any](m map[string]A) (string, A, error) {
	var zero A
	if len(m) != 1 {
		return "", zero, fmt.Errorf("%w: %d submods, want 1", ErrMalformed, len(m))
	}
	for k, v := range m {
		return k, v, nil
	}
	return "", zero, nil
}

func confirmation(s suite, x25519, kid, wk []byte) (Confirmation, error) {
	c := Confirmation{KEM: s.KEM, KDF: s.KDF, AEAD: s.AEAD}
	switch {
	case s.KEM == KEMX25519 && x25519 != nil && kid == nil && wk == nil:
		c.PublicKey = x25519
	case s.KEM != KEMX25519 && x25519 == nil && kid != nil:
		if !bytes.Equal(kid, Thumbprint(s.KEM, wk)) {
			return c, fmt.Errorf("%w: cnf kid is not the thumbprint of the workload key", ErrMalformed)
		}
		c.PublicKey = wk
	default:
		return c, fmt.Errorf("%w: cnf does not fit KEM 0x%04x", ErrMalformed, s.KEM)
	}
	return c, nil
}

func fromCWT(w *cwtClaims) (*Claims, error) {
	name, a, err := one(w.Submods)
	if err != nil {
		return nil, err
	}
	c := &Claims{Issuer: w.Issuer, Audience: w.Audience, Expiry: w.Expiry, NotBefore: w.NotBefore, IssuedAt: w.IssuedAt,
		ID: base64.RawURLEncoding.EncodeToString(w.ID), Profile: w.Profile,
		VerifierBuild: w.VerifierID.Build, VerifierDeveloper: w.VerifierID.Developer,
		TEE: w.Medicus.TEE, Measurement: w.Medicus.Measurement, Policy: w.Medicus.Policy, PolicyDigest: w.Medicus.PolicyDigest,
		Grants: w.Medicus.Grants, Platform: w.Medicus.Platform, Appraised: w.Medicus.Appraised}
	if a.Status == earStatusAffirming {
		c.Status = StatusAffirming
	} else {
		c.Status = fmt.Sprint(a.Status)
	}
	if name != submodName(c.TEE) {
		return nil, fmt.Errorf("%w: submod %q for TEE %q", ErrMalformed, name, c.TEE)
	}
	var x []byte
	if w.Cnf.Key != nil {
		if w.Cnf.Key.Kty != coseKtyOKP || w.Cnf.Key.Crv != coseCrvX2559 || len(w.Cnf.Key.X) != 32 {
			return nil, fmt.Errorf("%w: cnf COSE_Key is not an X25519 key", ErrMalformed)
		}
		x = w.Cnf.Key.X
	}
	if c.Confirmation, err = confirmation(w.Medicus.Suite, x, w.Cnf.Kid, w.Medicus.WorkloadKey); err != nil {
		return nil, err
	}
	return c, nil
}

func fromJSON(w *jsonClaims) (*Claims, error) {
	name, a, err := one(w.Submods)
	if err != nil {
		return nil, err
	}
	c := &Claims{Issuer: w.Issuer, Audience: w.Audience, Expiry: w.Expiry, NotBefore: w.NotBefore, IssuedAt: w.IssuedAt,
		ID: w.ID, Profile: w.Profile, Status: a.Status,
		VerifierBuild: w.VerifierID.Build, VerifierDeveloper: w.VerifierID.Developer,
		TEE: w.Medicus.TEE, Measurement: w.Medicus.Measurement, Policy: w.Medicus.Policy, PolicyDigest: w.Medicus.PolicyDigest,
		Grants: w.Medicus.Grants, Platform: w.Medicus.Platform, Appraised: w.Medicus.Appraised}
	if name != submodName(c.TEE) {
		return nil, fmt.Errorf("%w: submod %q for TEE %q", ErrMalformed, name, c.TEE)
	}
	var x []byte
	if w.Cnf.JWK != nil {
		if w.Cnf.JWK.Kty != "OKP" || w.Cnf.JWK.Crv != "X25519" || len(w.Cnf.JWK.X) != 32 {
			return nil, fmt.Errorf("%w: cnf jwk is not an X25519 key", ErrMalformed)
		}
		x = w.Cnf.JWK.X
	}
	if c.Confirmation, err = confirmation(w.Medicus.Suite, x, w.Cnf.Kid, w.Medicus.WorkloadKey); err != nil {
		return nil, err
	}
	return c, nil
}

var (
	cborEnc, _ = cbor.CoreDetEncOptions().EncMode()
	cborDec, _ = cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		IndefLength: cbor.IndefLengthForbidden, MaxNestedLevels: 16, MaxArrayElements: 1024, MaxMapPairs: 1024}.DecMode()
)
