package kms

import (
	"bytes"
	"errors"
	"maps"
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

// FuzzBind: names and contexts come from clients. Bind never panics, and two different contexts
// that both bind never share an encoding (the encoding is the key-derivation and AAD input:
// sharing it would hand one case's key to another).
func FuzzBind(f *testing.F) {
	f.Add("t/k", "case", "42", "patient", "p-1")
	f.Add("t/k", "a", "b=c", "a=b", "c")
	f.Add("t/k", "a", "", "", "a")
	f.Add("../k", "x\x00", "y", "x", "\x00y")
	f.Fuzz(func(t *testing.T, name, k1, v1, k2, v2 string) {
		one := Context{k1: v1}
		two := Context{k1: v1, k2: v2}
		other := Context{k2: v2}
		var seen []Context
		var encs [][]byte
		for _, kc := range []Context{one, two, other} {
			b, err := Bind(name, kc)
			if err != nil {
				continue
			}
			enc := b.Canonical()
			for i, e := range encs {
				if bytes.Equal(e, enc) && !maps.Equal(seen[i], kc) {
					t.Fatalf("contexts %q and %q share the encoding %q", seen[i], kc, enc)
				}
			}
			seen, encs = append(seen, kc), append(encs, enc)
		}
	})
}
