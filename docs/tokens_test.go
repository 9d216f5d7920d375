package docs_test

// Vectors of docs/tokens.md (vectors/token.json: EAR tokens). The token section and this file
// belong together: a change of the token format replaces both.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"github.com/medicus-cloud/trust/ear"
	"github.com/medicus-cloud/trust/ear/issuer"
	"github.com/medicus-cloud/trust/release"
	"github.com/medicus-cloud/trust/seal"
)

func TestTokenVectors(t *testing.T) {
	type vec struct {
		Comment string `json:"comment"`
		// SigningKey is the ES256 private scalar (32 bytes); PublicKeySPKI its public key as
		// GetTokenKeys returns it, KeyID the kid.
		SigningKey    hexb            `json:"signing_key"`
		PublicKeySPKI hexb            `json:"public_key_spki"`
		KeyID         string          `json:"kid"`
		VerifyAt      int64           `json:"verify_at"`
		CWT           hexb            `json:"cwt"`
		JWT           string          `json:"jwt"`
		ClaimKeys     []int64         `json:"cwt_claim_keys"`
		Claims        json.RawMessage `json:"claims"`
	}
	var v vec
	now := time.Unix(1767225600, 0)
	vectors(t, "token.json", &v, func() {
		d := bytes.Repeat([]byte{0x11}, 32)
		key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
		if err != nil {
			t.Fatal(err)
		}
		iss, err := issuer.New(issuer.Options{Key: key, Issuer: "https://trust.medicus.example", Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		claims := &ear.Claims{
			Confirmation: ear.Confirmation{KEM: seal.KEMX25519, KDF: seal.KDFHKDFSHA256, AEAD: seal.AEADAES256GCM, PublicKey: bytes.Repeat([]byte{0x42}, 32)},
			TEE:          "sev-snp", Measurement: bytes.Repeat([]byte{0xaa}, 48), Policy: "hello",
			PolicyDigest: bytes.Repeat([]byte{0xbb}, 32),
			Grants:       []release.Grant{{Kind: release.GrantSecret, Name: "hello/token"}, {Kind: release.GrantDataKey, Name: "hello/records"}},
			Platform:     map[string]string{"chip_id": "0102"},
		}
		cwt, jwt, _, err := iss.IssueBoth(claims)
		if err != nil {
			t.Fatal(err)
		}
		spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		v = vec{Comment: "verify the CWT and the JWT under public_key_spki at verify_at; both carry the same claims",
			SigningKey: d, PublicKeySPKI: spki, KeyID: iss.KeyID(), VerifyAt: now.Unix() + 60, CWT: cwt, JWT: string(jwt)}
	})

	pub, err := x509.ParsePKIXPublicKey(v.PublicKeySPKI)
	if err != nil {
		t.Fatal(err)
	}
	ecpub := pub.(*ecdsa.PublicKey)
	if kid, _ := ear.KeyID(ecpub); kid != v.KeyID {
		t.Fatalf("kid %s, vector %s", kid, v.KeyID)
	}
	keys := map[string]*ecdsa.PublicKey{v.KeyID: ecpub}
	at := time.Unix(v.VerifyAt, 0)
	fromCWT, err := ear.Verify(v.CWT, keys, at)
	if err != nil {
		t.Fatalf("CWT: %v", err)
	}
	fromJWT, err := ear.VerifyJWT([]byte(v.JWT), keys, at)
	if err != nil {
		t.Fatalf("JWT: %v", err)
	}
	cj, _ := json.Marshal(fromCWT)
	jj, _ := json.Marshal(fromJWT)
	if !bytes.Equal(cj, jj) {
		t.Fatalf("CWT and JWT claims differ:\n%s\n%s", cj, jj)
	}

	// The CWT's payload uses exactly the documented integer claim keys.
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(v.CWT); err != nil {
		t.Fatal(err)
	}
	var raw map[int64]cbor.RawMessage
	if err := cbor.Unmarshal(msg.Payload, &raw); err != nil {
		t.Fatal(err)
	}
	var ks []int64
	for k := range raw {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	if *update {
		v.ClaimKeys, v.Claims = ks, cj
		vectors(t, "token.json", &v, func() {})
	}
	if !slices.Equal(ks, v.ClaimKeys) {
		t.Errorf("CWT claim keys %v, vector %v", ks, v.ClaimKeys)
	}
	var want, got any
	json.Unmarshal(v.Claims, &want)
	json.Unmarshal(cj, &got)
	if wb, _ := json.Marshal(want); !bytes.Equal(wb, mustJSON(got)) {
		t.Errorf("claims\n%s\nvector\n%s", cj, v.Claims)
	}

	// Expired, tampered and unknown-key tokens are refused.
	if _, err := ear.Verify(v.CWT, keys, time.Unix(fromCWT.Expiry, 0)); err == nil {
		t.Error("expired CWT accepted")
	}
	bad := bytes.Clone(v.CWT)
	bad[len(bad)-1] ^= 1
	if _, err := ear.Verify(bad, keys, at); err == nil {
		t.Error("tampered CWT accepted")
	}
	if _, err := ear.Verify(v.CWT, map[string]*ecdsa.PublicKey{}, at); err == nil {
		t.Error("CWT under an unknown key accepted")
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
