package audit_test

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/kms"
)

// The vector was computed independently of this package (HKDF and HMAC from Python's
// standard library), so that another implementation can check itself against it.
func TestContextDigestVector(t *testing.T) {
	k, err := audit.NewContextKey(seq32())
	if err != nil {
		t.Fatal(err)
	}
	kc := kms.Context{"tenant": "uk-freiburg", "case": "c-1042"}
	canon, err := kc.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	const (
		wantCanon  = "000000186d6564696375732d74727573742f763120636f6e74657874000000046361736500000006632d313034320000000674656e616e740000000b756b2d6672656962757267"
		wantTenant = "58aa37fbbe3dafdca96c16b4f91263667df24c2940aa6eb556fc73e5572a285b"
		wantDigest = "cfe77d0eb843e0a98f2a2bb00605d9140966a2ee88205731a7e2fcc46a97524a"
	)
	if hex.EncodeToString(canon) != wantCanon {
		t.Fatalf("canonical context %x", canon)
	}
	tk := k.Tenant("uk-freiburg")
	if tk.Hex() != wantTenant {
		t.Errorf("tenant key %s, want %s", tk.Hex(), wantTenant)
	}
	if d := k.Digest("uk-freiburg", canon); d != wantDigest {
		t.Errorf("digest %s, want %s", d, wantDigest)
	}
	// A tenant's auditor, holding only the tenant key, checks the same digest.
	only, err := audit.ParseTenantKey("uk-freiburg", []byte(wantTenant+"\n"))
	if err != nil || !only.Check(wantDigest, canon) {
		t.Fatalf("tenant key check: %v", err)
	}
	// Another tenant's key, another case, or no key at all (the old unkeyed SHA-256) do not match.
	other, _ := kms.Context{"tenant": "uk-freiburg", "case": "c-1043"}.Canonical()
	plain, _ := kc.Digest()
	for name, ok := range map[string]bool{
		"other tenant key": k.Tenant("uk-ulm").Check(wantDigest, canon),
		"other case":       tk.Check(wantDigest, other),
		"unkeyed sha-256":  hex.EncodeToString(plain) == wantDigest,
		"other deployment": mustKey(t, bytes.Repeat([]byte{7}, 32)).Tenant("uk-freiburg").Check(wantDigest, canon),
	} {
		if ok {
			t.Errorf("%s matched", name)
		}
	}
}

func TestParseContextKey(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{hex.EncodeToString(seq32()) + "\n", true},
		{string(seq32()), true},
		{"00", false},
		{"zz" + hex.EncodeToString(seq32())[2:], false},
		{"", false},
	} {
		_, err := audit.ParseContextKey([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("ParseContextKey(%q): %v", tc.in, err)
		}
		if err != nil && bytes.Contains([]byte(err.Error()), []byte(tc.in)) && tc.in != "" {
			t.Errorf("error %q shows the key file's contents", err)
		}
	}
}

// Summaries and releases carry new members; they round-trip through the strict parser.
func TestRecordNewMembersRoundTrip(t *testing.T) {
	r := &audit.Record{Time: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Event: audit.EventAttestUnverified,
		Verdict: audit.VerdictDeny, Reason: "evidence not authentic: report.signature", Caller: "192.0.2.7",
		PolicyDigest: "aa", TokenPolicyDigest: "bb", Count: 5999, Until: time.Date(2026, 12, 1, 10, 1, 0, 500, time.FixedZone("x", 3600))}
	b, err := audit.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2026-12-01T10:00:00Z","request_id":"","event":"attest_unverified","verdict":"deny","reason":"evidence not authentic: report.signature","policy_digest":"aa","token_policy_digest":"bb","caller":"192.0.2.7","count":5999,"until":"2026-12-01T09:01:00.0000005Z"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	p, err := audit.ParseRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.Count != 5999 || p.TokenPolicyDigest != "bb" || !p.Until.Equal(r.Until) {
		t.Fatalf("parsed %+v", p)
	}
	if _, err := audit.ParseRecord(bytes.Replace(b, []byte("Z\"}"), []byte("+00:00\"}"), 1)); err == nil {
		t.Error("non-UTC until accepted")
	}
}

func seq32() []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func mustKey(t *testing.T, b []byte) *audit.ContextKey {
	k, err := audit.NewContextKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
