// Package cosekey signs the project's COSE_Sign1 documents (policy bundle signatures, vendor
// reference values, collateral bundles) in one way: ECDSA P-256 or Ed25519 keys, with the
// algorithm, the key ID and the content type in the protected header.
package cosekey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"fmt"
	"io"

	"github.com/veraison/go-cose"

	"github.com/medicus-cloud/trust/internal/keyfile"
)

// Alg is the COSE algorithm of an accepted signing key: ES256 for ECDSA P-256, EdDSA for Ed25519.
func Alg(pub crypto.PublicKey) (cose.Algorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return cose.AlgorithmES256, nil
		}
		return 0, fmt.Errorf("ECDSA key on %s, want P-256", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return cose.AlgorithmEdDSA, nil
	}
	return 0, fmt.Errorf("%T key, want ECDSA P-256 or Ed25519", pub)
}

// Sign1 signs payload with key as a COSE_Sign1 whose protected header names the algorithm, the
// key ID (keyfile.ID) and contentType. With detached the payload is left out of the message.
// It returns the encoded message and the key ID.
func Sign1(rand io.Reader, key crypto.Signer, contentType string, payload []byte, detached bool) ([]byte, string, error) {
	alg, err := Alg(key.Public())
	if err != nil {
		return nil, "", err
	}
	kid, err := keyfile.ID(key.Public())
	if err != nil {
		return nil, "", err
	}
	signer, err := cose.NewSigner(alg, key)
	if err != nil {
		return nil, "", err
	}
	msg := cose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(alg)
	msg.Headers.Protected[cose.HeaderLabelKeyID] = []byte(kid)
	msg.Headers.Protected[cose.HeaderLabelContentType] = contentType
	msg.Payload = payload
	if err := msg.Sign(rand, nil, signer); err != nil {
		return nil, "", err
	}
	if detached {
		msg.Payload = nil
	}
	b, err := msg.MarshalCBOR()
	return b, kid, err
}
