// Package kmstest is the conformance suite that every kms backend must pass.
package kmstest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/secret"
)

// Store is a backend under test: both halves of one store.
type Store interface {
	kms.KeyStore
	kms.Admin
}

// Run runs the suite against a fresh store from newStore for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	caseA := kms.Context{"tenant": "uk-freiburg", "case": "a"}
	caseB := kms.Context{"tenant": "uk-freiburg", "case": "b"}

	t.Run("DataKeyRoundTrip", func(t *testing.T) {
		s := newStore(t)
		mustCreate(t, s, "tenant-a/records")
		dk, err := s.GenerateDataKey(ctx, kms.MustBind("tenant-a/records", caseA))
		if err != nil {
			t.Fatal(err)
		}
		if dk.Plaintext.Len() != kms.DataKeySize || len(dk.Wrapped) == 0 {
			t.Fatalf("data key: %d bytes plaintext, %d wrapped", dk.Plaintext.Len(), len(dk.Wrapped))
		}
		if bytes.Contains(dk.Wrapped, dk.Plaintext.Reveal()) {
			t.Fatal("wrapped key contains the plaintext")
		}
		got, err := s.UnwrapDataKey(ctx, kms.MustBind("tenant-a/records", caseA), dk.Wrapped)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(dk.Plaintext) {
			t.Fatal("unwrapped key differs")
		}
		dk2, _ := s.GenerateDataKey(ctx, kms.MustBind("tenant-a/records", caseA))
		if dk2.Plaintext.Equal(dk.Plaintext) {
			t.Fatal("two data keys are equal")
		}
	})

	t.Run("WrongContextOrName", func(t *testing.T) {
		s := newStore(t)
		mustCreate(t, s, "tenant-a/records")
		mustCreate(t, s, "tenant-a/other")
		dk, err := s.GenerateDataKey(ctx, kms.MustBind("tenant-a/records", caseA))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.UnwrapDataKey(ctx, kms.MustBind("tenant-a/records", caseB), dk.Wrapped); !errors.Is(err, kms.ErrBadWrapped) {
			t.Errorf("other context: %v, want ErrBadWrapped", err)
		}
		if _, err := s.UnwrapDataKey(ctx, kms.MustBind("tenant-a/records", nil), dk.Wrapped); !errors.Is(err, kms.ErrBadWrapped) {
			t.Errorf("empty context: %v, want ErrBadWrapped", err)
		}
		if _, err := s.UnwrapDataKey(ctx, kms.MustBind("tenant-a/other", caseA), dk.Wrapped); !errors.Is(err, kms.ErrBadWrapped) {
			t.Errorf("other key: %v, want ErrBadWrapped", err)
		}
		bad := bytes.Clone(dk.Wrapped)
		bad[len(bad)-3] ^= 0x01
		if _, err := s.UnwrapDataKey(ctx, kms.MustBind("tenant-a/records", caseA), bad); !errors.Is(err, kms.ErrBadWrapped) {
			t.Errorf("flipped bit: %v, want ErrBadWrapped", err)
		}
		for _, junk := range [][]byte{nil, {1, 2, 3}, bytes.Repeat([]byte{'v'}, 300)} {
			if _, err := s.UnwrapDataKey(ctx, kms.MustBind("tenant-a/records", caseA), junk); !errors.Is(err, kms.ErrBadWrapped) {
				t.Errorf("junk %q: %v, want ErrBadWrapped", junk, err)
			}
		}
	})

	t.Run("Rotation", func(t *testing.T) {
		s := newStore(t)
		mustCreate(t, s, "k")
		old, err := s.GenerateDataKey(ctx, kms.MustBind("k", caseA))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RotateKey(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		fresh, err := s.GenerateDataKey(ctx, kms.MustBind("k", caseA))
		if err != nil {
			t.Fatal(err)
		}
		for _, dk := range []*kms.DataKey{old, fresh} {
			got, err := s.UnwrapDataKey(ctx, kms.MustBind("k", caseA), dk.Wrapped)
			if err != nil || !got.Equal(dk.Plaintext) {
				t.Fatalf("after rotation: %v", err)
			}
		}
		if err := s.RotateKey(ctx, "missing"); !errors.Is(err, kms.ErrNotFound) {
			t.Errorf("rotate missing: %v", err)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.GenerateDataKey(ctx, kms.MustBind("missing", caseA)); !errors.Is(err, kms.ErrNotFound) {
			t.Errorf("GenerateDataKey: %v, want ErrNotFound", err)
		}
		if _, err := s.GetSecret(ctx, "missing"); !errors.Is(err, kms.ErrNotFound) {
			t.Errorf("GetSecret: %v, want ErrNotFound", err)
		}
	})

	t.Run("InvalidNames", func(t *testing.T) {
		s := newStore(t)
		for _, name := range []string{"../sys", "a/../../b", "a%2f..%2fb", "/abs", "Transit/x", ""} {
			if _, err := kms.Bind(name, caseA); !errors.Is(err, kms.ErrInvalidName) {
				t.Errorf("Bind(%q): %v", name, err)
			}
			if _, err := s.GetSecret(ctx, name); !errors.Is(err, kms.ErrInvalidName) {
				t.Errorf("GetSecret(%q): %v", name, err)
			}
		}
	})

	t.Run("Unbound", func(t *testing.T) {
		// A store never trusts a name it was not given through kms.Bind.
		s := newStore(t)
		if dk, err := s.GenerateDataKey(ctx, kms.Bound{}); dk != nil || !errors.Is(err, kms.ErrInvalidName) {
			t.Errorf("GenerateDataKey(zero Bound): %v", err)
		}
		if k, err := s.UnwrapDataKey(ctx, kms.Bound{}, []byte("wrapped")); k != nil || !errors.Is(err, kms.ErrInvalidName) {
			t.Errorf("UnwrapDataKey(zero Bound): %v", err)
		}
	})

	t.Run("SecretVersions", func(t *testing.T) {
		s := newStore(t)
		v1, err := s.PutSecret(ctx, "tenant-a/api-token", secret.New([]byte("one")))
		if err != nil {
			t.Fatal(err)
		}
		v2, err := s.PutSecret(ctx, "tenant-a/api-token", secret.New([]byte("two")))
		if err != nil {
			t.Fatal(err)
		}
		if v2 <= v1 {
			t.Fatalf("versions %d then %d", v1, v2)
		}
		got, err := s.GetSecret(ctx, "tenant-a/api-token")
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Value.Reveal()) != "two" || got.Version != v2 {
			t.Fatalf("GetSecret = version %d", got.Version)
		}
	})
}

func mustCreate(t *testing.T, s Store, name string) {
	t.Helper()
	if err := s.CreateKey(context.Background(), name); err != nil {
		t.Fatalf("CreateKey(%q): %v", name, err)
	}
}

// Fault is one way a store breaks in production.
type Fault struct {
	// Name says what breaks: "store down", "wrong PIN", "key missing", "key disabled",
	// "token removed", ...
	Name string
	// Want is the error every affected call must wrap while the fault lasts:
	// kms.ErrUnavailable or kms.ErrDenied (the service answers Unavailable for both) or
	// kms.ErrNotFound (NotFound).
	Want error
	// KeyOnly says the fault touches the key FaultKey alone, so secrets still work.
	KeyOnly bool
	// Break breaks the store s, which holds key FaultKey and secret FaultSecret. The returned
	// function, if not nil, repairs it; the suite then checks the store works again.
	Break func(t *testing.T, s Store) (repair func(t *testing.T))
}

// The key and secret that RunFaults creates before breaking a store.
const (
	FaultKey    = "tenant-a/records"
	FaultSecret = "tenant-a/api-token"
)

// RunFaults breaks a fresh store from newStore in each of the ways listed and checks that every
// release path fails closed: an error wrapping the fault's Want and no key material at all.
func RunFaults(t *testing.T, newStore func(t *testing.T) Store, faults []Fault) {
	ctx := context.Background()
	kc := kms.Context{"tenant": "tenant-a", "case": "c-1"}
	for _, f := range faults {
		t.Run(f.Name, func(t *testing.T) {
			s := newStore(t)
			mustCreate(t, s, FaultKey)
			dk, err := s.GenerateDataKey(ctx, kms.MustBind(FaultKey, kc))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.PutSecret(ctx, FaultSecret, secret.New([]byte("s3cret"))); err != nil {
				t.Fatal(err)
			}
			repair := f.Break(t, s)

			got, err := s.GenerateDataKey(ctx, kms.MustBind(FaultKey, kc))
			t.Logf("GenerateDataKey while broken: %v", err)
			if got != nil || !errors.Is(err, f.Want) {
				t.Errorf("GenerateDataKey: %v (released %t), want %v", err, got != nil, f.Want)
			}
			un, err := s.UnwrapDataKey(ctx, kms.MustBind(FaultKey, kc), dk.Wrapped)
			if un != nil || !errors.Is(err, f.Want) {
				t.Errorf("UnwrapDataKey: %v (released %t), want %v", err, un != nil, f.Want)
			}
			if !f.KeyOnly {
				if err := s.RotateKey(ctx, FaultKey); !errors.Is(err, f.Want) {
					t.Errorf("RotateKey: %v, want %v", err, f.Want)
				}
				sec, err := s.GetSecret(ctx, FaultSecret)
				if sec != nil || !errors.Is(err, f.Want) {
					t.Errorf("GetSecret: %v (released %t), want %v", err, sec != nil, f.Want)
				}
			}
			if repair == nil {
				return
			}
			repair(t)
			// The store must recover on its own, allowing for the store settling down.
			for i := 0; ; i++ {
				un, err = s.UnwrapDataKey(ctx, kms.MustBind(FaultKey, kc), dk.Wrapped)
				if err == nil {
					break
				}
				if i == 100 {
					t.Fatalf("no recovery after repair: UnwrapDataKey: %v", err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !un.Equal(dk.Plaintext) {
				t.Fatal("after repair: the data key differs")
			}
			if _, err := s.GenerateDataKey(ctx, kms.MustBind(FaultKey, kc)); err != nil {
				t.Fatalf("after repair: GenerateDataKey: %v", err)
			}
		})
	}
}
