package token_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/ear"
	"github.com/medicus-cloud/trust/ear/issuer"
	"github.com/medicus-cloud/trust/internal/wire"
	"github.com/medicus-cloud/trust/release"
	sdk "github.com/medicus-cloud/trust/sdk/token"
)

var now = time.Unix(1_800_000_000, 0)

func newIssuer(t testing.TB, verify ...*ecdsa.PublicKey) *issuer.Issuer {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	i, err := issuer.New(issuer.Options{Key: k, Verify: verify, Issuer: "trustd.example", Audience: "medicus-trust", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func claims() *ear.Claims {
	return &ear.Claims{TEE: "tdx", Policy: "radiology", PolicyDigest: []byte{1},
		Grants:       []release.Grant{{Kind: release.GrantDataKey, Name: "dek/radiology"}},
		Confirmation: ear.Confirmation{KEM: 0x20, KDF: 1, AEAD: 2, PublicKey: make([]byte, 32)}}
}

func keysOf(t testing.TB, i *issuer.Issuer) (jwks, grpc *sdk.Keys) {
	b, err := i.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	if jwks, err = sdk.ParseJWKS(b); err != nil {
		t.Fatal(err)
	}
	resp, err := tokenKeys(i)
	if err != nil {
		t.Fatal(err)
	}
	if grpc, err = sdk.FromTokenKeys(resp); err != nil {
		t.Fatal(err)
	}
	return jwks, grpc
}

// hostile builds a COSE_Sign1 with an arbitrary algorithm and key, as an attacker would.
func hostileCWT(t *testing.T, alg cose.Algorithm, kid string, key *ecdsa.PrivateKey, c *ear.Claims) []byte {
	m := cose.NewSign1Message()
	m.Headers.Protected.SetAlgorithm(alg)
	m.Headers.Protected[cose.HeaderLabelKeyID] = []byte(kid)
	m.Payload, _ = cbor.Marshal(c)
	if key == nil {
		// Unsigned: a bare signature field of junk.
		m.Signature = []byte{1}
		b, _ := m.MarshalCBOR()
		return b
	}
	s, err := cose.NewSigner(cose.AlgorithmES256, key)
	if err != nil {
		t.Fatal(err)
	}
	m.Headers.Protected.SetAlgorithm(cose.AlgorithmES256)
	if err := m.Sign(rand.Reader, nil, s); err != nil {
		t.Fatal(err)
	}
	m.Headers.Protected.SetAlgorithm(alg)
	b, _ := m.MarshalCBOR()
	return b
}

// algJWT re-signs the claims of jwt under another algorithm: "none" (no signature) or HS256
// keyed with the issuer's public key, the classic algorithm-confusion forgeries.
func algJWT(t *testing.T, alg string, i *issuer.Issuer, jwt []byte) []byte {
	parts := strings.Split(string(jwt), ".")
	enc := base64.RawURLEncoding
	h := enc.EncodeToString([]byte(`{"alg":"` + alg + `","kid":"` + i.KeyID() + `","typ":"JWT"}`))
	if alg == "none" {
		return []byte(h + "." + parts[1] + ".")
	}
	der, err := x509.MarshalPKIXPublicKey(i.PublicKeys()[i.KeyID()])
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, der)
	m.Write([]byte(h + "." + parts[1]))
	return []byte(h + "." + parts[1] + "." + enc.EncodeToString(m.Sum(nil)))
}

func TestVerify(t *testing.T) {
	old := newIssuer(t)
	i := newIssuer(t, old.PublicKeys()[old.KeyID()])
	cwt, jwt, exp, err := i.IssueBoth(claims())
	if err != nil {
		t.Fatal(err)
	}
	oldTok, _, _ := old.Issue(claims())
	forger := newIssuer(t)
	forged, forgedJWT, _, _ := forger.IssueBoth(claims())
	fk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	full := ear.Claims{Profile: ear.Profile, Status: ear.StatusAffirming, Expiry: now.Unix() + 60}
	jwks, grpc := keysOf(t, i)
	at := func(t time.Time) func() time.Time { return func() time.Time { return t } }

	for _, tc := range []struct {
		name string
		tok  []byte
		o    sdk.Options
		want error
	}{
		{"cwt", cwt, sdk.Options{Now: at(now), Issuer: "trustd.example"}, nil},
		{"jwt", jwt, sdk.Options{Now: at(now)}, nil},
		{"previous key", oldTok, sdk.Options{Now: at(now)}, nil},
		{"cwt expired", cwt, sdk.Options{Now: at(exp)}, sdk.ErrExpired},
		{"jwt expired", jwt, sdk.Options{Now: at(exp.Add(time.Hour))}, sdk.ErrExpired},
		{"not yet", cwt, sdk.Options{Now: at(now.Add(-time.Minute))}, sdk.ErrNotYet},
		{"forged cwt", forged, sdk.Options{Now: at(now)}, sdk.ErrUnknownKey},
		{"forged jwt", forgedJWT, sdk.Options{Now: at(now)}, sdk.ErrUnknownKey},
		{"kid of ours, other key", hostileCWT(t, cose.AlgorithmES256, i.KeyID(), fk, &full), sdk.Options{Now: at(now)}, sdk.ErrSignature},
		{"cwt unsigned", hostileCWT(t, cose.AlgorithmES256, i.KeyID(), nil, &full), sdk.Options{Now: at(now)}, sdk.ErrSignature},
		{"cwt ES384", hostileCWT(t, cose.AlgorithmES384, i.KeyID(), fk, &full), sdk.Options{Now: at(now)}, sdk.ErrAlgorithm},
		{"cwt EdDSA", hostileCWT(t, cose.AlgorithmEdDSA, i.KeyID(), fk, &full), sdk.Options{Now: at(now)}, sdk.ErrAlgorithm},
		{"wrong issuer", jwt, sdk.Options{Now: at(now), Issuer: "other"}, sdk.ErrIssuer},
		{"wrong issuer cwt", cwt, sdk.Options{Now: at(now), Issuer: "other"}, sdk.ErrIssuer},
		{"issuer and audience", cwt, sdk.Options{Now: at(now), Issuer: "trustd.example", Audience: "medicus-trust"}, nil},
		{"wrong audience", jwt, sdk.Options{Now: at(now), Audience: "someone-else"}, sdk.ErrAudience},
		{"wrong audience cwt", cwt, sdk.Options{Now: at(now), Audience: "someone-else"}, sdk.ErrAudience},
		{"garbage", []byte{0xd2, 0x84}, sdk.Options{Now: at(now)}, sdk.ErrMalformed},
		{"jwt alg none", algJWT(t, "none", i, jwt), sdk.Options{Now: at(now)}, sdk.ErrAlgorithm},
		{"jwt HS256 keyed with our public key", algJWT(t, "HS256", i, jwt), sdk.Options{Now: at(now)}, sdk.ErrAlgorithm},
	} {
		for name, keys := range map[string]*sdk.Keys{"jwks": jwks, "grpc": grpc} {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				c, err := keys.Verify(tc.tok, tc.o)
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				if err == nil && !c.Granted(release.GrantDataKey, "dek/radiology") {
					t.Fatalf("claims %+v", c)
				}
			})
		}
	}
}

// TestRetiredKey: past a key's not_after (known from GetTokenKeys) nothing it signed verifies,
// even a token whose own expiry says otherwise.
func TestRetiredKey(t *testing.T) {
	old := newIssuer(t)
	i := newIssuer(t, old.PublicKeys()[old.KeyID()])
	tok, _, _ := old.Issue(claims())
	resp, _ := tokenKeys(i)
	for _, k := range resp.Keys {
		if k.Kid == old.KeyID() {
			k.NotAfter = timestamppb.New(now.Add(time.Minute))
		}
	}
	keys, err := sdk.FromTokenKeys(resp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Verify(tok, sdk.Options{Now: func() time.Time { return now.Add(2 * time.Minute) }}); !errors.Is(err, sdk.ErrUnknownKey) {
		t.Fatalf("retired key: %v", err)
	}
}

func TestParseJWKSBad(t *testing.T) {
	i := newIssuer(t)
	good, _ := i.JWKS()
	var set ear.JWKSet
	json.Unmarshal(good, &set)
	edit := func(f func(*ear.JWK)) string {
		k := set.Keys[0]
		f(&k)
		b, _ := json.Marshal(ear.JWKSet{Keys: []ear.JWK{k}})
		return string(b)
	}
	for name, in := range map[string]string{
		"empty":       `{"keys":[]}`,
		"not json":    `keys`,
		"unknown":     `{"keys":[],"x":1}`,
		"trailing":    string(good) + `{}`,
		"HS256":       edit(func(k *ear.JWK) { k.Alg = "HS256" }),
		"oct":         edit(func(k *ear.JWK) { k.Kty = "oct" }),
		"P-384":       edit(func(k *ear.JWK) { k.Crv = "P-384" }),
		"kid":         edit(func(k *ear.JWK) { k.Kid = "mine" }),
		"off curve":   edit(func(k *ear.JWK) { k.Y = k.X }),
		"short x":     edit(func(k *ear.JWK) { k.X = "AAAA" }),
		"enc use":     edit(func(k *ear.JWK) { k.Use = "enc" }),
		"private key": `{"keys":[{"kty":"EC","crv":"P-256","d":"AAAA"}]}`,
	} {
		if _, err := sdk.ParseJWKS([]byte(in)); !errors.Is(err, sdk.ErrKeySet) {
			t.Errorf("%s: %v, want ErrKeySet", name, err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	i := newIssuer(f)
	cwt, jwt, _, _ := i.IssueBoth(claims())
	f.Add(cwt)
	f.Add(jwt)
	f.Add([]byte("eyJhbGciOiJub25lIn0.e30."))
	keys, _ := keysOf(f, i)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := keys.Verify(b, sdk.Options{Now: func() time.Time { return now }})
		if err == nil && c.Status != ear.StatusAffirming {
			t.Fatalf("accepted %+v", c)
		}
	})
}

func FuzzParseJWKS(f *testing.F) {
	i := newIssuer(f)
	b, _ := i.JWKS()
	f.Add(b)
	f.Add([]byte(`{"keys":[{"kty":"EC"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = sdk.ParseJWKS(b)
	})
}

func Example() {
	// trustd's side, here for the example: an issuer and its published key set.
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	i, _ := issuer.New(issuer.Options{Key: k, Issuer: "trustd.example"})
	_, jwt, _, _ := i.IssueBoth(&ear.Claims{TEE: "sev-snp", Grants: []release.Grant{{Kind: release.GrantSecret, Name: "db-password"}}})
	jwksJSON, _ := i.JWKS() // what GET /.well-known/jwks.json returns

	// The relying party: parse the key set once, verify tokens offline.
	keys, err := sdk.ParseJWKS(jwksJSON)
	if err != nil {
		panic(err)
	}
	c, err := keys.Verify(jwt, sdk.Options{Issuer: "trustd.example"})
	if err != nil {
		fmt.Println("rejected:", err)
		return
	}
	fmt.Println(c.TEE, c.Granted(release.GrantSecret, "db-password"))
	// Output: sev-snp true
}

func ExampleFromTokenKeys() {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	i, _ := issuer.New(issuer.Options{Key: k})
	cwt, _, _ := i.Issue(&ear.Claims{TEE: "tdx"})
	resp, _ := tokenKeys(i) // what trustd's GetTokenKeys returns

	keys, err := sdk.FromTokenKeys(resp)
	if err != nil {
		panic(err)
	}
	_, err = keys.Verify(cwt, sdk.Options{Now: func() time.Time { return time.Now().Add(time.Hour) }})
	fmt.Println(errors.Is(err, sdk.ErrExpired))
	// Output: true
}

// tokenKeys is what trustd's GetTokenKeys returns for i.
func tokenKeys(i *issuer.Issuer) (*pb.GetTokenKeysResponse, error) {
	var keys []wire.TokenKey
	for _, k := range i.Published() {
		keys = append(keys, wire.TokenKey(k))
	}
	return wire.TokenKeysToPB(keys)
}
