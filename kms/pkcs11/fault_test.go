//go:build cgo

package pkcs11_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/kmstest"
	"github.com/medicus-cloud/trust/kms/pkcs11"
	"github.com/medicus-cloud/trust/kms/pkcs11/pkcs11test"
)

// TestFaults breaks a store in a real SoftHSM2 token in the ways an HSM breaks and checks that
// every release fails closed with the right error, and that the store recovers on its own.
func TestFaults(t *testing.T) {
	h := pkcs11test.Start(t)
	h.InitToken(t, token)
	h.InitToken(t, "medicus-removable")
	var pinFile string
	newStore := func(t *testing.T) kmstest.Store {
		cfg := h.Config(t, token)
		if t.Name() == "TestFaults/token_removed" {
			cfg.Token = "medicus-removable"
		}
		// A PIN file of the store's own, so that breaking it breaks only this store.
		pinFile = t.TempDir() + "/pin"
		if err := os.WriteFile(pinFile, []byte(pkcs11test.PIN), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.PINFile = pinFile
		return open(t, cfg)
	}
	kmstest.RunFaults(t, newStore, []kmstest.Fault{
		{Name: "wrong PIN", Want: kms.ErrDenied, Break: func(t *testing.T, s kmstest.Store) func(*testing.T) {
			if err := os.WriteFile(pinFile, []byte("0000"), 0o600); err != nil {
				t.Fatal(err)
			}
			pkcs11.ForgetLogin(s.(*pkcs11.Store))
			return func(t *testing.T) {
				if err := os.WriteFile(pinFile, []byte(pkcs11test.PIN), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{Name: "token removed", Want: kms.ErrUnavailable, Break: func(t *testing.T, s kmstest.Store) func(*testing.T) {
			reinsert := h.RemoveToken(t, "medicus-removable")
			return func(*testing.T) { reinsert() }
		}},
		{Name: "key disabled", Want: kms.ErrDenied, KeyOnly: true, Break: func(t *testing.T, s kmstest.Store) func(*testing.T) {
			if err := pkcs11.SetKeyUsable(s.(*pkcs11.Store), kmstest.FaultKey, false); err != nil {
				t.Fatal(err)
			}
			return func(t *testing.T) {
				if err := pkcs11.SetKeyUsable(s.(*pkcs11.Store), kmstest.FaultKey, true); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{Name: "key missing", Want: kms.ErrNotFound, KeyOnly: true, Break: func(t *testing.T, s kmstest.Store) func(*testing.T) {
			if err := pkcs11.DestroyKey(s.(*pkcs11.Store), kmstest.FaultKey); err != nil {
				t.Fatal(err)
			}
			return nil
		}},
	})
}

func TestWrongPINAtStart(t *testing.T) {
	h := pkcs11test.Start(t)
	h.InitToken(t, token)
	cfg := h.Config(t, token)
	cfg.PINFile = t.TempDir() + "/pin"
	os.WriteFile(cfg.PINFile, []byte("1234"), 0o600)
	if _, err := pkcs11.New(context.Background(), cfg, pkcs11.Options{}); !errors.Is(err, kms.ErrDenied) {
		t.Fatalf("wrong PIN at start: %v, want ErrDenied", err)
	}
}
