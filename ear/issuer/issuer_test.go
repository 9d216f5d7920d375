package issuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"github.com/medicus-cloud/trust/ear"
	"github.com/medicus-cloud/trust/release"
	"reflect"
	"testing"
	"time"
)

func newIssuer(t testing.TB, now *time.Time) *Issuer {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	i, err := New(Options{Key: k, Issuer: "https://trust.example", Audience: "medicus-trust", Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	return i
}

var x25519Key = ear.Confirmation{KEM: ear.KEMX25519, KDF: 1, AEAD: 2, PublicKey: make([]byte, 32)}

func TestIssueVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	i := newIssuer(t, &now)
	cnf := x25519Key
	cnf.PublicKey = append([]byte(nil), cnf.PublicKey...)
	cnf.PublicKey[2] = 3
	tok, exp, err := i.Issue(&ear.Claims{TEE: "sev-snp", Policy: "hello", Grants: []release.Grant{{Kind: release.GrantDataKey, Name: "hello/records"}}, Confirmation: cnf})
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(DefaultLifetime)) {
		t.Fatalf("exp %v", exp)
	}
	c, err := i.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Granted(release.GrantDataKey, "hello/records") || c.Granted(release.GrantSecret, "hello/records") || c.Confirmation.PublicKey[2] != 3 {
		t.Fatalf("claims %+v", c)
	}

	other := newIssuer(t, &now)
	forged, _, _ := other.Issue(&ear.Claims{Confirmation: x25519Key})
	flipped := append([]byte(nil), tok...)
	flipped[len(flipped)-5] ^= 1
	tests := []struct {
		name string
		tok  []byte
		at   time.Time
		want error
	}{
		{"other issuer", forged, now, ear.ErrUnknownKey},
		{"flipped signature", flipped, now, ear.ErrSignature},
		{"expired", tok, now.Add(DefaultLifetime), ear.ErrExpired},
		{"garbage", []byte("not a token"), now, ear.ErrMalformed},
		{"empty", nil, now, ear.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ear.Verify(tc.tok, i.PublicKeys(), tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestIssuerAndAudience(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mk := func(iss, aud string) *Issuer {
		i, err := New(Options{Key: k, Issuer: iss, Audience: aud, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	a := mk("https://a.example", "rp")
	for _, tc := range []struct {
		name string
		by   *Issuer
		want error
	}{
		{"same", mk("https://a.example", "rp"), nil},
		{"other issuer", mk("https://b.example", "rp"), ear.ErrIssuer},
		{"other audience", mk("https://a.example", "other"), ear.ErrAudience},
		{"no audience", mk("https://a.example", ""), ear.ErrAudience},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cwt, jwt, _, err := tc.by.IssueBoth(&ear.Claims{TEE: "tdx", Confirmation: x25519Key})
			if err != nil {
				t.Fatal(err)
			}
			for form, tok := range map[string][]byte{"cwt": cwt, "jwt": jwt} {
				if _, err := a.Verify(tok); !errors.Is(err, tc.want) {
					t.Errorf("%s: got %v, want %v", form, err, tc.want)
				}
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	i := newIssuer(f, &now)
	cwt, jwt, _, _ := i.IssueBoth(&ear.Claims{TEE: "tdx", Confirmation: x25519Key})
	f.Add(cwt)
	f.Add(jwt)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := i.Verify(b)
		if err == nil && (c.Profile != ear.Profile || c.Status != ear.StatusAffirming) {
			t.Fatalf("accepted %+v", c)
		}
	})
}

// TestVerifyRemembers: a token verified once is not checked for its signature again, but its
// validity window is checked on every call; bytes that differ are verified afresh and failures
// are not remembered.
func TestVerifyRemembers(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	i := newIssuer(t, &now)
	tok, _, err := i.Issue(&ear.Claims{TEE: "sev-snp", Policy: "hello", Grants: []release.Grant{{Kind: release.GrantDataKey, Name: "hello/records"}}})
	if err != nil {
		t.Fatal(err)
	}
	c1, err := i.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	c1.Policy = "changed by a caller"
	c2, err := i.Verify(tok)
	if err != nil || c2.Policy != "hello" {
		t.Fatalf("second Verify = %+v, %v", c2, err)
	}
	if n := len(i.verified.m); n != 1 {
		t.Fatalf("%d tokens remembered, want 1", n)
	}
	flipped := append([]byte(nil), tok...)
	flipped[len(flipped)-5] ^= 1
	for range 2 {
		if _, err := i.Verify(flipped); !errors.Is(err, ear.ErrSignature) {
			t.Fatalf("flipped token: %v, want ErrSignature", err)
		}
	}
	if n := len(i.verified.m); n != 1 {
		t.Fatalf("a failure was remembered: %d tokens", n)
	}
	now = now.Add(DefaultLifetime)
	if _, err := i.Verify(tok); !errors.Is(err, ear.ErrExpired) {
		t.Fatalf("remembered token after its expiry: %v, want ErrExpired", err)
	}
}

func TestVerifiedCacheBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var v verifiedCache
	for n := range MaxVerifiedTokens + 10 {
		var d [32]byte
		d[0], d[1] = byte(n), byte(n>>8)
		v.put(d, &ear.Claims{Expiry: now.Unix() + 60}, now)
		if len(v.m) > MaxVerifiedTokens {
			t.Fatalf("%d entries", len(v.m))
		}
	}
}

// TestIssuedTokensRemembered: the issuer remembers the tokens it signs with exactly the claims a
// full verification of their bytes yields, so that skipping that verification changes nothing.
func TestIssuedTokensRemembered(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	i := newIssuer(t, &now)
	c := &ear.Claims{TEE: "tdx", Policy: "hello", Measurement: []byte{1, 2, 3}, Platform: map[string]string{"fmspc": "00906ed50000"},
		Grants: []release.Grant{{Kind: release.GrantDataKey, Name: "hello/records"}}, Confirmation: x25519Key, Appraised: []byte{0xa0}}
	cwt, jwt, _, err := i.IssueBoth(c)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(i.verified.m); n != 2 {
		t.Fatalf("%d tokens remembered after IssueBoth, want 2", n)
	}
	for name, tc := range map[string]struct {
		tok  []byte
		full func([]byte) (*ear.Claims, error)
	}{
		"cwt": {cwt, func(b []byte) (*ear.Claims, error) { return ear.Verify(b, i.keys, now) }},
		"jwt": {jwt, func(b []byte) (*ear.Claims, error) { return ear.VerifyJWT(b, i.keys, now) }},
	} {
		remembered, err := i.Verify(tc.tok)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		verified, err := tc.full(tc.tok)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(remembered, verified) {
			t.Errorf("%s: remembered claims differ from verified ones:\n%+v\n%+v", name, remembered, verified)
		}
	}
}
