package issuer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"github.com/medicus-cloud/trust/ear"
	"strings"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/internal/docvec"
	"github.com/medicus-cloud/trust/release"
)

var update = flag.Bool("update", false, "rewrite the test vectors in docs/")

const tokensDoc = "../../docs/tokens.md"

// docsKey is the published test key of docs/tokens.md.
func docsKey(t *testing.T) *ecdsa.PrivateKey {
	d := sha256.Sum256([]byte("medicus trust docs/tokens.md test key"))
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func docsIssuer(t *testing.T) (*Issuer, *ear.Claims) {
	now := time.Unix(1_800_000_000, 0)
	id := make([]byte, 16)
	for i := range id {
		id[i] = byte(i)
	}
	i, err := New(Options{Key: docsKey(t), Issuer: "https://trust.example", Audience: "medicus-trust",
		VerifierBuild: "trustd v1.0.0", Now: func() time.Time { return now }, Rand: bytes.NewReader(id)})
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("bundle"))
	c := &ear.Claims{TEE: "sev-snp", Policy: "hello", PolicyDigest: digest[:], Measurement: bytes.Repeat([]byte{0xaa}, 48),
		Grants:       []release.Grant{{Kind: release.GrantSecret, Name: "hello/api-token"}, {Kind: release.GrantDataKey, Name: "hello/records"}},
		Confirmation: ear.Confirmation{KEM: ear.KEMX25519, KDF: 1, AEAD: 2, PublicKey: bytes.Repeat([]byte{9}, 32)}}
	return i, c
}

// TestDocsVectors checks the vectors of docs/tokens.md against the encoder and verifier.
func TestDocsVectors(t *testing.T) {
	i, c := docsIssuer(t)
	filled, _, err := i.fill(c)
	if err != nil {
		t.Fatal(err)
	}
	jwk, _ := ear.NewJWK(&docsKey(t).PublicKey)
	jwkJSON, _ := json.Marshal(jwk)
	jp, _ := ear.MarshalJWTClaims(filled)
	cp, _ := ear.MarshalCWTClaims(filled)
	hp, _ := ear.MarshalJWTClaims(&ear.Claims{Confirmation: ear.Confirmation{KEM: 0x647a, KDF: 1, AEAD: 2, PublicKey: bytes.Repeat([]byte{7}, 1216)}})
	var hybrid struct {
		Cnf json.RawMessage `json:"cnf"`
	}
	_ = json.Unmarshal(hp, &hybrid)
	cnf := []byte(hybrid.Cnf)
	want := map[string]string{"key-jwk": string(jwkJSON), "jwt-payload": string(jp), "cwt-payload": hex.EncodeToString(cp), "cnf-hybrid": string(cnf)}
	if *update {
		jwt, _ := i.signJWT(filled)
		cwt, _ := i.signCWT(filled)
		want["jwt"], want["cwt"] = string(jwt), hex.EncodeToString(cwt)
		if err := docvec.Update(tokensDoc, want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := docvec.Read(tokensDoc)
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("docs/tokens.md vector %s:\n%s\nwant\n%s", name, got[name], w)
		}
	}
	// The signed vectors verify, with the documented claims.
	cwt, err := hex.DecodeString(got["cwt"])
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string][]byte{"jwt": []byte(got["jwt"]), "cwt": cwt} {
		v, err := i.Verify(tok)
		if err != nil {
			t.Fatalf("vector %s: %v", name, err)
		}
		if v.ID != filled.ID || !v.Granted(release.GrantDataKey, "hello/records") {
			t.Errorf("vector %s: claims %+v", name, v)
		}
	}
	if p := strings.Split(got["jwt"], "."); len(p) != 3 {
		t.Fatalf("jwt vector")
	}
}
