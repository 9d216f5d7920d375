package kms

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"hello", "hello/records", "tenant-1/imaging.v2", "a/b/c", "k_1"} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/abs", "a/../b", "..", "a//b", "a/", "A", "a%2fb", "a\\b", "transit/../kv", ".hidden", "a/.b", "a b", strings.Repeat("a", 129), "a..b"} {
		if err := CheckName(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("CheckName(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
}

func TestContextCanonical(t *testing.T) {
	a, _ := Context{"tenant": "uk-freiburg", "case": "42"}.Canonical()
	b, _ := Context{"case": "42", "tenant": "uk-freiburg"}.Canonical()
	if !bytes.Equal(a, b) {
		t.Fatal("order changes canonical form")
	}
	// Length prefixes keep pairs from running into each other.
	c, _ := Context{"a": "bc"}.Canonical()
	d, _ := Context{"ab": "c"}.Canonical()
	if bytes.Equal(c, d) {
		t.Fatal("ambiguous encoding")
	}
	for _, bad := range []Context{{"Tenant": "x"}, {"": "x"}, {"k": strings.Repeat("v", 257)}, {"k": "\xff"}} {
		if _, err := bad.Canonical(); !errors.Is(err, ErrBadContext) {
			t.Errorf("Canonical(%v) = %v", bad, err)
		}
	}
}

func TestBind(t *testing.T) {
	kc := Context{"tenant": "uk-freiburg", "case": "42"}
	b, err := Bind("t/records", kc)
	if err != nil {
		t.Fatal(err)
	}
	canon, _ := kc.Canonical()
	digest, _ := kc.Digest()
	if b.Name() != "t/records" || !bytes.Equal(b.Canonical(), canon) || !bytes.Equal(b.Digest(), digest) || b.Check() != nil {
		t.Fatalf("Bind = %q %x %x", b.Name(), b.Canonical(), b.Digest())
	}
	// Immutable: neither the caller's map nor the returned slices reach inside.
	kc["case"] = "43"
	b.Canonical()[0] ^= 1
	b.Digest()[0] ^= 1
	b.Context()["case"] = "44"
	if v, _ := b.Value("case"); v != "42" || !bytes.Equal(b.Canonical(), canon) || !bytes.Equal(b.Digest(), digest) {
		t.Fatal("a Bound changed after Bind")
	}
	if _, err := Bind("../x", nil); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Bind(bad name) = %v", err)
	}
	if _, err := Bind("x", Context{"Bad": "v"}); !errors.Is(err, ErrBadContext) {
		t.Errorf("Bind(bad context) = %v", err)
	}
	if err := (Bound{}).Check(); !errors.Is(err, ErrInvalidName) {
		t.Errorf("zero Bound: Check = %v", err)
	}
}
