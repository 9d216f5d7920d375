package consent_test

import (
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/consent"
	"github.com/medicus-cloud/trust/consent/consenttest"
)

func TestCheck(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "consent.json")
	reg, err := consent.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ufr, ulm := consenttest.New("uk-freiburg", "ufr-2026"), consenttest.New("uk-ulm", "ulm-2026")
	for _, i := range []*consenttest.Issuer{ufr, ulm} {
		if err := reg.RegisterKey(i.Tenant, i.KeyID, i.PublicKeyPEM()); err != nil {
			t.Fatal(err)
		}
	}
	req := consent.Requirement{Purposes: []string{consent.Treatment}, Recipient: "hello"}
	rel := consent.Release{Tenant: "uk-freiburg", Patient: "psn-7f3a", Now: now}
	good := ufr.Claims("st-1", "psn-7f3a", "hello", now, consent.Treatment, consent.Teleconsultation)
	with := func(f func(c *consent.Claims)) []byte {
		c := good
		f(&c)
		return ufr.Sign(c)
	}
	unsigned := []byte(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"medicus-consent+jwt"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"jti":"st-1"}`)) + ".")
	// Another base64url letter in the signature (not the last, whose low bits may be unused):
	// still a well-formed JWS, with another signature.
	flipped := ufr.Sign(good)
	if i := len(flipped) - 3; flipped[i] == 'A' {
		flipped[i] = 'B'
	} else {
		flipped[i] = 'A'
	}
	tests := []struct {
		name  string
		raw   []byte
		rel   func(r *consent.Release)
		claim string // "" means accepted; "malformed" means ErrMalformed
	}{
		{"valid", ufr.Sign(good), nil, ""},
		{"absent", nil, nil, "consent"},
		{"garbage", []byte("not a jws"), nil, "malformed"},
		{"unsigned", unsigned, nil, "consent.signature"},
		{"bad signature", flipped, nil, "consent.signature"},
		{"wrong typ", ufr.SignRaw([]byte(`{}`), "JWT"), nil, "consent.typ"},
		{"foreign tenant's key", ulm.Sign(ulm.Claims("st-1", "psn-7f3a", "hello", now, consent.Treatment)), nil, "consent.signature"},
		{"foreign tenant as issuer", with(func(c *consent.Claims) { c.Issuer = "uk-ulm" }), nil, "consent.iss"},
		{"expired", with(func(c *consent.Claims) {
			c.Expires = now.Add(-time.Hour).Unix()
			c.NotBefore = now.Add(-48 * time.Hour).Unix()
		}), nil, "consent.exp"},
		{"not yet valid", with(func(c *consent.Claims) { c.NotBefore = now.Add(time.Hour).Unix() }), nil, "consent.nbf"},
		{"unbounded", with(func(c *consent.Claims) { c.Expires = now.Add(5 * 365 * 24 * time.Hour).Unix() }), nil, "consent.exp"},
		// exp - nbf of about 584 years: in nanoseconds it wraps around int64 to 0.29 s.
		{"unbounded, overflowing", with(func(c *consent.Claims) { c.Expires = c.NotBefore + 18_446_744_074 }), nil, "consent.exp"},
		{"unbounded, negative nbf", with(func(c *consent.Claims) { c.NotBefore = -1 << 62; c.Expires = 1 << 62 }), nil, "consent.exp"},
		{"other recipient", with(func(c *consent.Claims) { c.Audience = "messenger" }), nil, "consent.aud"},
		{"purpose not granted", with(func(c *consent.Claims) { c.Purposes = []string{consent.Research} }), nil, "consent.purpose"},
		{"patient mismatch", ufr.Sign(good), func(r *consent.Release) { r.Patient = "psn-0000" }, "consent.sub"},
		{"patient prefix", ufr.Sign(good), func(r *consent.Release) { r.Patient = "psn-7f3" }, "consent.sub"},
		{"release for another tenant", ufr.Sign(good), func(r *consent.Release) { r.Tenant = "uk-ulm" }, "consent.signature"},
		{"no jti", with(func(c *consent.Claims) { c.ID = "" }), nil, "consent.jti"},
		{"cwt valid", ufr.SignCWT(good), nil, ""},
		{"cwt wrong content type", ufr.SignCWTRaw(consent.CWTClaims{ID: []byte("st-1")}, "application/cwt"), nil, "consent.typ"},
		{"cwt foreign tenant's key", ulm.SignCWT(ulm.Claims("st-1", "psn-7f3a", "hello", now, consent.Treatment)), nil, "consent.signature"},
		{"cwt bad signature", flip(ufr.SignCWT(good)), nil, "consent.signature"},
		{"cwt purpose not granted", ufr.SignCWT(ufr.Claims("st-1", "psn-7f3a", "hello", now, consent.Research)), nil, "consent.purpose"},
		{"cwt patient mismatch", ufr.SignCWT(good), func(r *consent.Release) { r.Patient = "psn-0000" }, "consent.sub"},
		{"cwt expired", ufr.SignCWT(func() consent.Claims {
			c := good
			c.NotBefore, c.Expires = now.Add(-48*time.Hour).Unix(), now.Add(-time.Hour).Unix()
			return c
		}()), nil, "consent.exp"},
		{"cbor garbage", []byte{0xd2, 0x84, 0x01}, nil, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rel
			if tc.rel != nil {
				tc.rel(&r)
			}
			res, err := reg.Check(tc.raw, req, r)
			var d *consent.Denial
			switch {
			case tc.claim == "":
				if err != nil || res.ID != "st-1" || len(res.Digest) != 64 {
					t.Fatalf("Check = %+v, %v", res, err)
				}
			case tc.claim == "malformed":
				if !errors.Is(err, consent.ErrMalformed) {
					t.Fatalf("Check = %v, want ErrMalformed", err)
				}
			case !errors.As(err, &d) || d.Claim != tc.claim:
				t.Fatalf("Check = %v, want a denial of %s", err, tc.claim)
			}
			// No error ever carries the patient pseudonym.
			if err != nil && strings.Contains(err.Error(), "psn-") {
				t.Fatalf("error names the patient: %v", err)
			}
		})
	}

	// A withdrawal persists: a registry reopened from the file still refuses the statement.
	if err := reg.Withdraw("uk-freiburg", "st-1", now); err != nil {
		t.Fatal(err)
	}
	reopened, err := consent.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var d *consent.Denial
	if _, err := reopened.Check(ufr.Sign(good), req, rel); !errors.As(err, &d) || d.Claim != "consent.withdrawn" {
		t.Fatalf("withdrawn statement after reopen: %v", err)
	}
	// Withdrawal is per tenant: the same ID at another tenant is unaffected.
	ulmOK := ulm.Sign(ulm.Claims("st-1", "psn-7f3a", "hello", now, consent.Treatment))
	if _, err := reopened.Check(ulmOK, req, consent.Release{Tenant: "uk-ulm", Patient: "psn-7f3a", Now: now}); err != nil {
		t.Fatalf("other tenant's statement: %v", err)
	}
}

func flip(b []byte) []byte {
	b = append([]byte(nil), b...)
	b[len(b)-1] ^= 1
	return b
}

func TestRegisterKeyBadInput(t *testing.T) {
	reg, _ := consent.Open(filepath.Join(t.TempDir(), "c.json"))
	for _, k := range [][]byte{nil, []byte("junk"), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")} {
		if err := reg.RegisterKey("uk-freiburg", "k", k); err == nil {
			t.Errorf("RegisterKey(%q) accepted", k)
		}
	}
}

func FuzzCheck(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	reg, _ := consent.Open(filepath.Join(f.TempDir(), "c.json"))
	i := consenttest.New("t", "k")
	reg.RegisterKey("t", "k", i.PublicKeyPEM())
	f.Add(i.Sign(i.Claims("a", "p", "r", now, "treatment")))
	f.Add([]byte("a.b.c"))
	f.Add(i.SignCWT(i.Claims("a", "p", "r", now, "treatment")))
	f.Fuzz(func(t *testing.T, raw []byte) {
		reg.Check(raw, consent.Requirement{Purposes: []string{"treatment"}, Recipient: "r"}, consent.Release{Tenant: "t", Patient: "p", Now: now})
	})
}
