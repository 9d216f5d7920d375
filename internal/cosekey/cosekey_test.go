package cosekey

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/veraison/go-cose"
)

func TestSign1(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := Alg(p384.Public()); err == nil || !strings.Contains(err.Error(), "want P-256") {
		t.Fatalf("P-384: %v", err)
	}
	for _, detached := range []bool{false, true} {
		for _, key := range []any{p256, ed} {
			var b []byte
			var kid string
			var err error
			switch k := key.(type) {
			case *ecdsa.PrivateKey:
				b, kid, err = Sign1(rand.Reader, k, "application/x-test", []byte("payload"), detached)
			case ed25519.PrivateKey:
				b, kid, err = Sign1(rand.Reader, k, "application/x-test", []byte("payload"), detached)
			}
			if err != nil || kid == "" {
				t.Fatalf("Sign1: %v %q", err, kid)
			}
			var msg cose.Sign1Message
			if err := msg.UnmarshalCBOR(b); err != nil {
				t.Fatal(err)
			}
			if (msg.Payload == nil) != detached {
				t.Fatalf("detached %v, payload %q", detached, msg.Payload)
			}
			if got, _ := msg.Headers.Protected[cose.HeaderLabelKeyID].([]byte); string(got) != kid {
				t.Fatalf("kid %q, want %q", got, kid)
			}
			if ct := msg.Headers.Protected[cose.HeaderLabelContentType]; ct != "application/x-test" {
				t.Fatalf("content type %v", ct)
			}
		}
	}
}
