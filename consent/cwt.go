package consent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	cose "github.com/veraison/go-cose"
)

// ContentType is the COSE content type (header 3) a CWT statement must carry.
const ContentType = "application/medicus-consent+cwt"

// CWTClaims are a CWT statement's payload (RFC 8392 labels; purposes is a text-keyed claim of
// this profile). Produce it with cbor.Marshal for tests and tools.
type CWTClaims struct {
	Issuer    string   `cbor:"1,keyasint"`
	Subject   string   `cbor:"2,keyasint"`
	Audience  string   `cbor:"3,keyasint"`
	Expires   int64    `cbor:"4,keyasint"`
	NotBefore int64    `cbor:"5,keyasint"`
	IssuedAt  int64    `cbor:"6,keyasint,omitempty"`
	ID        []byte   `cbor:"7,keyasint"`
	Purposes  []string `cbor:"purposes"`
}

func coseAlgOf(k any) cose.Algorithm {
	if k, ok := k.(*ecdsa.PublicKey); ok {
		if k.Curve == elliptic.P384() {
			return cose.AlgorithmES384
		}
		return cose.AlgorithmES256
	}
	return cose.AlgorithmEdDSA
}

// verifyCOSE checks a COSE_Sign1 statement and returns its claims in the common form.
func (r *Registry) verifyCOSE(raw []byte, tenant string) (*Claims, error) {
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(raw); err != nil {
		return nil, fmt.Errorf("%w: neither a JWS nor a COSE_Sign1", ErrMalformed)
	}
	if len(msg.Headers.Unprotected) != 0 {
		return nil, fmt.Errorf("%w: unprotected header not empty", ErrMalformed)
	}
	if ct, _ := msg.Headers.Protected[cose.HeaderLabelContentType].(string); ct != ContentType {
		return nil, &Denial{Claim: "consent.typ", Seen: fmt.Sprintf("%q", ct), Expected: fmt.Sprintf("%q", ContentType)}
	}
	kid, _ := msg.Headers.Protected[cose.HeaderLabelKeyID].([]byte)
	key, err := r.key(tenant, string(kid))
	if err != nil {
		return nil, err
	}
	alg, err := msg.Headers.Protected.Algorithm()
	if err != nil || alg != coseAlgOf(key) {
		return nil, &Denial{Claim: "consent.signature", Seen: "unsigned or signed with another algorithm", Expected: coseAlgOf(key).String() + " for key " + string(kid)}
	}
	v, err := cose.NewVerifier(alg, key)
	if err != nil {
		return nil, &Denial{Claim: "consent.signature", Seen: "key unusable", Expected: "a registered key"}
	}
	if err := msg.Verify(nil, v); err != nil {
		return nil, &Denial{Claim: "consent.signature", Seen: "signature does not verify", Expected: "a signature by key " + string(kid)}
	}
	var cc CWTClaims
	dm, _ := cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, MaxArrayElements: 64, MaxMapPairs: 64}.DecMode()
	if err := dm.Unmarshal(msg.Payload, &cc); err != nil {
		return nil, &Denial{Claim: "consent", Seen: "payload is not the statement's CBOR claims", Expected: "docs/consent.md claims"}
	}
	return &Claims{ID: string(cc.ID), Issuer: cc.Issuer, Subject: cc.Subject, Audience: cc.Audience, Purposes: cc.Purposes,
		NotBefore: cc.NotBefore, Expires: cc.Expires, IssuedAt: cc.IssuedAt}, nil
}
