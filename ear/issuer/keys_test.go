package issuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/ear"
	"github.com/medicus-cloud/trust/internal/wire"
	"github.com/medicus-cloud/trust/release"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKeyRotation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	now := time.Unix(1_800_000_000, 0)
	ks, err := LoadKeys(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if ks.Current == nil || len(ks.Recent) != 0 {
		t.Fatalf("first load: %+v", ks)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("%d files", len(ents))
	}
	fi, _ := os.Stat(filepath.Join(dir, ents[0].Name()))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", fi.Mode().Perm())
	}
	again, err := LoadKeys(dir, now.Add(time.Minute))
	if err != nil || !again.Current.Equal(ks.Current) {
		t.Fatal("reload gave another key")
	}
	first := ks.Current

	// A token signed before the rotation still verifies after it, until it expires.
	iss1, _ := New(ks.Options("trustd"))
	iss1.o.Now = func() time.Time { return now }
	tok, _, err := iss1.Issue(&ear.Claims{TEE: "tdx"})
	if err != nil {
		t.Fatal(err)
	}
	at := now.Add(time.Hour)
	ks2, err := Rotate(dir, at)
	if err != nil {
		t.Fatal(err)
	}
	if ks2.Current.Equal(first) || len(ks2.Recent) != 1 || !ks2.Recent[0].Public.Equal(&first.PublicKey) {
		t.Fatalf("after rotation: %+v", ks2)
	}
	if !ks2.Recent[0].NotAfter.Equal(at.Add(DefaultKeep)) {
		t.Fatalf("not after %v", ks2.Recent[0].NotAfter)
	}
	o := ks2.Options("trustd")
	o.Now = func() time.Time { return now.Add(time.Minute) }
	iss2, _ := New(o)
	if _, err := iss2.Verify(tok); err != nil {
		t.Fatalf("token of the previous key: %v", err)
	}
	resp, err := tokenKeys(iss2)
	if err != nil || len(resp.Keys) != 2 || resp.Keys[0].Kid != iss2.KeyID() || resp.Keys[0].NotAfter != nil || resp.Keys[1].NotAfter == nil {
		t.Fatalf("TokenKeys = %v, %v", resp, err)
	}
	if _, err := Rotate(dir, at); err == nil {
		t.Fatal("second rotation in the same second succeeded")
	}

	// Past Keep the old key is gone from the set and from the directory.
	late := at.Add(DefaultKeep + time.Hour)
	ks3, err := Rotate(dir, late)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks3.Recent) != 1 || ks3.Recent[0].Public.Equal(&first.PublicKey) {
		t.Fatalf("old key still there: %+v", ks3.Recent)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Fatalf("%d key files after pruning", len(ents))
	}
}

func TestKeyDirBad(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name, file, body string
		mode             os.FileMode
	}{
		{"readable", "token-1799999999.pem", "", 0o644},
		{"bad name", "token-abc.pem", "", 0o600},
		{"future", "token-1900000000.pem", "", 0o600},
		{"not pem", "token-1799999999.pem", "hello", 0o600},
		{"ed25519", "token-1799999999.pem", "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBWg1MbnFQ3mMzMf0RVD4pL7cCbDJ3DaWBQtb8+IWL3O\n-----END PRIVATE KEY-----\n", 0o600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			body := tc.body
			if body == "" {
				body = newKeyPEM(t)
			}
			if err := os.WriteFile(filepath.Join(dir, tc.file), []byte(body), tc.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(filepath.Join(dir, tc.file), tc.mode)
			if _, err := LoadKeys(dir, now); err == nil {
				t.Fatal("loaded a bad key directory")
			} else {
				t.Log(err)
			}
		})
	}
}

func newKeyPEM(t *testing.T) string {
	d := t.TempDir()
	if err := (KeyDir{Dir: d}).create(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(d, "token-1.pem"))
	return string(b)
}

func TestJWT(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	i := newIssuer(t, &now)
	cwt, jwt, exp, err := i.IssueBoth(&ear.Claims{TEE: "sev-snp", Policy: "p", PolicyDigest: []byte{1, 2},
		Grants: []release.Grant{{Kind: release.GrantSecret, Name: "s"}}, Confirmation: ear.Confirmation{KEM: ear.KEMX25519, PublicKey: append([]byte{9}, make([]byte, 31)...)}})
	if err != nil {
		t.Fatal(err)
	}
	c1, err := i.Verify(cwt)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := i.Verify(jwt)
	if err != nil {
		t.Fatal(err)
	}
	if c1.ID != c2.ID || c2.Expiry != exp.Unix() || !c2.Granted(release.GrantSecret, "s") || c2.Confirmation.PublicKey[0] != 9 {
		t.Fatalf("claims differ: %+v %+v", c1, c2)
	}
	parts := strings.Split(string(jwt), ".")
	enc := base64.RawURLEncoding
	hs := func(h string) string { return enc.EncodeToString([]byte(h)) }
	other := newIssuer(t, &now)
	forged, _, _ := other.IssueJWT(&ear.Claims{Confirmation: x25519Key})
	payload, _ := enc.DecodeString(parts[1])
	var m map[string]any
	json.Unmarshal(payload, &m)
	m["medicus.trust"].(map[string]any)["grants"] = []map[string]string{{"kind": "secret", "name": "everything"}}
	widened, _ := json.Marshal(m)
	for _, tc := range []struct {
		name string
		tok  string
		at   time.Time
		want error
	}{
		{"alg none", hs(`{"alg":"none","typ":"JWT"}`) + "." + parts[1] + ".", now, ear.ErrAlgorithm},
		{"alg HS256", hs(`{"alg":"HS256","kid":"`+i.KeyID()+`","typ":"JWT"}`) + "." + parts[1] + "." + parts[2], now, ear.ErrAlgorithm},
		{"alg lowercase", hs(`{"alg":"es256","kid":"`+i.KeyID()+`","typ":"JWT"}`) + "." + parts[1] + "." + parts[2], now, ear.ErrAlgorithm},
		{"jku header", hs(`{"alg":"ES256","jku":"https://evil","kid":"`+i.KeyID()+`","typ":"JWT"}`) + "." + parts[1] + "." + parts[2], now, ear.ErrMalformed},
		{"other key", string(forged), now, ear.ErrUnknownKey},
		{"claims widened", parts[0] + "." + enc.EncodeToString(widened) + "." + parts[2], now, ear.ErrSignature},
		{"signature flipped", parts[0] + "." + parts[1] + "." + flipB64(parts[2]), now, ear.ErrSignature},
		{"two parts", parts[0] + "." + parts[1], now, ear.ErrMalformed},
		{"padding", string(jwt) + "=", now, ear.ErrSignature},
		{"expired", string(jwt), exp, ear.ErrExpired},
		{"not yet", string(jwt), now.Add(-time.Second), ear.ErrNotYet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ear.VerifyAny([]byte(tc.tok), i.PublicKeys(), tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func flipB64(s string) string {
	b, _ := base64.RawURLEncoding.DecodeString(s)
	b[10] ^= 1
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestJWKSHandler(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	old, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cur, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	i, err := New(Options{Key: cur, Verify: []*ecdsa.PublicKey{&old.PublicKey}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(JWKSHandler(func() *Issuer { return i }))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set ear.JWKSet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Type") != "application/jwk-set+json" || len(set.Keys) != 2 || set.Keys[0].Kid != i.KeyID() {
		t.Fatalf("JWKS %+v", set)
	}
	if r, _ := http.Post(srv.URL, "text/plain", nil); r.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST = %d", r.StatusCode)
	}
}

// tokenKeys is what trustd's GetTokenKeys returns for i.
func tokenKeys(i *Issuer) (*pb.GetTokenKeysResponse, error) {
	var keys []wire.TokenKey
	for _, k := range i.Published() {
		keys = append(keys, wire.TokenKey(k))
	}
	return wire.TokenKeysToPB(keys)
}

// A retired key stops verifying at its NotAfter in trustd too, not only in relying parties: a
// leaked retired key (still on disk until the next Rotate) must not mint tokens that a
// long-running trustd accepts, and a token it signed is not remembered past that time.
func TestRetiredKeyRefusedAfterNotAfter(t *testing.T) {
	cur, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	old, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	oldKid, _ := ear.KeyID(&old.PublicKey)
	notAfter := time.Unix(1_800_000_000, 0)
	now := notAfter.Add(-30 * time.Minute)
	i, err := New(Options{Key: cur, Verify: []*ecdsa.PublicKey{&old.PublicKey}, NotAfter: map[string]time.Time{oldKid: notAfter},
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	mint := func(at time.Time) []byte {
		t.Helper()
		o, err := New(Options{Key: old, Lifetime: time.Hour, Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		cwt, _, err := o.Issue(&ear.Claims{TEE: "tdx", Policy: "p",
			Grants: []release.Grant{{Kind: release.GrantDataKey, Name: "k"}}})
		if err != nil {
			t.Fatal(err)
		}
		return cwt
	}
	// Before NotAfter the retired key verifies (rotation overlap).
	early := mint(now)
	if _, err := i.Verify(early); err != nil {
		t.Fatalf("retired key before its NotAfter: %v", err)
	}
	now = notAfter.Add(time.Minute)
	if _, err := i.Verify(early); err == nil {
		t.Fatal("a token of a retired key, remembered before its NotAfter, is still accepted after it")
	}
	o, _ := New(Options{Key: old, Now: func() time.Time { return now }})
	cwt, jwt, _, err := o.IssueBoth(&ear.Claims{TEE: "tdx", Policy: "p"})
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string][]byte{"cwt": cwt, "jwt": jwt} {
		if _, err := i.Verify(tok); !errors.Is(err, ear.ErrUnknownKey) {
			t.Fatalf("%s signed by a retired key after its NotAfter: err %v, want ErrUnknownKey", name, err)
		}
	}
}
