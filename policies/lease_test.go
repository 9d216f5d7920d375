package policies

import (
	"strings"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
)

func leaseBundle(t *testing.T, lease string) (*Bundle, error) {
	t.Helper()
	return Parse(map[string][]byte{"p.yaml": []byte(`
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: p}
spec:
  tee: [insecure-simulated]
  measurements: ["` + strings.Repeat("ab", 48) + `"]
  lease: ` + lease + `
  grants: {secrets: [s]}
`)})
}

func TestLease(t *testing.T) {
	iat := time.Unix(1e9, 0)
	exp := iat.Add(5 * time.Minute)
	for _, tc := range []struct {
		lease string
		want  time.Time
		err   string
	}{
		{"90s", iat.Add(90 * time.Second), ""},
		{"10m", exp, ""},
		{"1h", exp, ""},
		{"0s", time.Time{}, "outside"},
		{"2h", time.Time{}, "outside"},
		{"soon", time.Time{}, "not a duration"},
		{"[1m]", time.Time{}, "want a"},
	} {
		b, err := leaseBundle(t, tc.lease)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("lease %s: %v, want an error containing %q", tc.lease, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("lease %s: %v", tc.lease, err)
		}
		if got := b.LeaseEnd("p", iat, exp); !got.Equal(tc.want) {
			t.Errorf("lease %s ends %v, want %v", tc.lease, got, tc.want)
		}
		if got := b.LeaseEnd("gone", iat, exp); !got.Equal(exp) {
			t.Errorf("unknown policy: %v", got)
		}
	}
}

func TestReappraise(t *testing.T) {
	b, err := leaseBundle(t, "1m")
	if err != nil {
		t.Fatal(err)
	}
	m := attest.Hex(strings.Repeat("\xab", 48))
	c := &attest.Claims{TEE: attest.InsecureSimulated, Measurement: m}
	if err := b.Reappraise("p", c); err != nil {
		t.Fatal(err)
	}
	if err := b.Reappraise("q", c); err == nil {
		t.Error("unknown policy vouched")
	}
	dbg := *c
	dbg.Debug = true
	if d, ok := b.Reappraise("p", &dbg).(*Denial); !ok || d.Claim != "debug" {
		t.Errorf("debug claims: %v", d)
	}
	if b.Reappraise("p", nil) == nil {
		t.Error("nil claims vouched")
	}
	if !SameImage(c, attest.InsecureSimulated, m) || SameImage(c, attest.SEVSNP, m) {
		t.Error("SameImage")
	}
}
