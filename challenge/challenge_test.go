package challenge

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestIssueCheck(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	iss, err := New(Options{Keys: [][]byte{k1}, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	n, exp, err := iss.Issue()
	if err != nil || len(n) != Size || !exp.Equal(now.Add(MaxLifetime)) {
		t.Fatalf("Issue = %x %v %v", n, exp, err)
	}
	rotated, _ := New(Options{Keys: [][]byte{k2, k1}, Now: clock})
	other, _ := New(Options{Keys: [][]byte{k2}, Now: clock})
	later, _ := New(Options{Keys: [][]byte{k1}, Now: func() time.Time { return now.Add(MaxLifetime) }})

	tamperedExp := bytes.Clone(n)
	tamperedExp[20]++
	tests := []struct {
		name string
		iss  *Issuer
		n    []byte
		want error
	}{
		{"ok", iss, n, nil},
		{"rotated key still accepted", rotated, n, nil},
		{"other deployment", other, n, ErrInvalid},
		{"expired", later, n, ErrExpired},
		{"expiry changed", iss, tamperedExp, ErrInvalid},
		{"short", iss, n[:10], ErrInvalid},
		{"empty", iss, nil, ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.iss.Check(tc.n)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestClockSkew: replicas share the nonce key, not a clock. A nonce from a replica whose clock
// runs ahead within the accepted skew is accepted; beyond it, refused; and no skew makes a
// nonce live past its own expiry.
func TestClockSkew(t *testing.T) {
	k := bytes.Repeat([]byte{1}, 32)
	now := time.Unix(1_800_000_000, 0)
	at := func(d time.Duration) func() time.Time { return func() time.Time { return now.Add(d) } }
	checker, err := New(Options{Keys: [][]byte{k}, Now: at(0)})
	if err != nil {
		t.Fatal(err)
	}
	strict, err := New(Options{Keys: [][]byte{k}, Now: at(0), ClockSkew: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ahead   time.Duration // how far the issuing replica's clock runs ahead
		checker *Issuer
		after   time.Duration // how long after issuing (checker's clock) the nonce is checked
		want    error
	}{
		{"same clock", 0, checker, 0, nil},
		{"issuer 2s ahead", 2 * time.Second, checker, 0, nil},
		{"issuer 29s ahead", 29 * time.Second, checker, 0, nil},
		{"issuer 30s ahead", DefaultClockSkew, checker, 0, nil},
		{"issuer 31s ahead", DefaultClockSkew + time.Second, checker, 0, ErrInvalid},
		{"issuer 10s ahead, configured skew 5s", 10 * time.Second, strict, 0, ErrInvalid},
		{"issuer 5s ahead, configured skew 5s", 5 * time.Second, strict, 0, nil},
		{"issuer 30s behind", -30 * time.Second, checker, 0, nil},
		{"issuer 30s ahead, checked at its expiry", DefaultClockSkew, checker, MaxLifetime + DefaultClockSkew, ErrExpired},
		{"issuer 30s behind, checked at its expiry", -30 * time.Second, checker, MaxLifetime - 30*time.Second, ErrExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			iss, err := New(Options{Keys: [][]byte{k}, Now: at(tc.ahead)})
			if err != nil {
				t.Fatal(err)
			}
			n, _, err := iss.Issue()
			if err != nil {
				t.Fatal(err)
			}
			c := *tc.checker
			c.now = at(tc.after)
			err = c.Check(n)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	k := make([]byte, 32)
	for _, o := range []Options{{}, {Keys: [][]byte{{1}}}, {Keys: [][]byte{k}, Lifetime: time.Hour},
		{Keys: [][]byte{k}, ClockSkew: -time.Second}, {Keys: [][]byte{k}, ClockSkew: MaxLifetime}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func FuzzCheck(f *testing.F) {
	iss, _ := New(Options{Keys: [][]byte{make([]byte, 32)}})
	n, _, _ := iss.Issue()
	f.Add(n)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = iss.Check(b)
	})
}
