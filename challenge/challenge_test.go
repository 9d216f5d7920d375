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

func TestOptions(t *testing.T) {
	for _, o := range []Options{{}, {Keys: [][]byte{{1}}}, {Keys: [][]byte{make([]byte, 32)}, Lifetime: time.Hour}} {
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
