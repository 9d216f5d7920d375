// Package consenttest issues consent statements for tests and examples: a hospital's signing
// key and the JWS statements of docs/consent.md.
package consenttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"time"

	"github.com/fxamacker/cbor/v2"
	jose "github.com/go-jose/go-jose/v4"
	cose "github.com/veraison/go-cose"

	"github.com/medicus-cloud/trust/consent"
)

// Issuer is a tenant's consent-signing key.
type Issuer struct {
	Tenant string
	KeyID  string
	Key    crypto.Signer
	Alg    jose.SignatureAlgorithm
}

// New makes an ES256 issuer for tenant.
func New(tenant, kid string) *Issuer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return &Issuer{Tenant: tenant, KeyID: kid, Key: k, Alg: jose.ES256}
}

// PublicKeyPEM is the key to register with trustd.
func (i *Issuer) PublicKeyPEM() []byte {
	der, err := x509.MarshalPKIXPublicKey(i.Key.Public())
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// Claims returns a statement's claims for patient, recipient and purposes, valid for a day
// from now.
func (i *Issuer) Claims(id, patient, recipient string, now time.Time, purposes ...string) consent.Claims {
	return consent.Claims{ID: id, Issuer: i.Tenant, Subject: patient, Audience: recipient, Purposes: purposes,
		NotBefore: now.Add(-time.Minute).Unix(), Expires: now.Add(24 * time.Hour).Unix(), IssuedAt: now.Unix()}
}

// Sign returns the compact JWS of c.
func (i *Issuer) Sign(c consent.Claims) []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	return i.SignRaw(b, consent.Type)
}

// SignRaw signs any payload with any typ header, for tests of malformed statements.
func (i *Issuer) SignRaw(payload []byte, typ string) []byte {
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: i.Alg, Key: jose.JSONWebKey{Key: i.Key, KeyID: i.KeyID}}, opts)
	if err != nil {
		panic(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		panic(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return []byte(out)
}

// SignCWT returns the COSE_Sign1 CWT form of c (ES256 issuers only).
func (i *Issuer) SignCWT(c consent.Claims) []byte {
	return i.SignCWTRaw(consent.CWTClaims{Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience, Expires: c.Expires,
		NotBefore: c.NotBefore, IssuedAt: c.IssuedAt, ID: []byte(c.ID), Purposes: c.Purposes}, consent.ContentType)
}

// SignCWTRaw signs CWT claims with any content type, for tests of malformed statements.
func (i *Issuer) SignCWTRaw(c consent.CWTClaims, contentType string) []byte {
	payload, err := cbor.Marshal(c)
	if err != nil {
		panic(err)
	}
	s, err := cose.NewSigner(cose.AlgorithmES256, i.Key)
	if err != nil {
		panic(err)
	}
	msg := cose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(cose.AlgorithmES256)
	msg.Headers.Protected[cose.HeaderLabelKeyID] = []byte(i.KeyID)
	if contentType != "" {
		msg.Headers.Protected[cose.HeaderLabelContentType] = contentType
	}
	msg.Payload = payload
	if err := msg.Sign(rand.Reader, nil, s); err != nil {
		panic(err)
	}
	out, err := msg.MarshalCBOR()
	if err != nil {
		panic(err)
	}
	return out
}
