package pkcs11_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/pkcs11"
	"github.com/medicus-cloud/trust/kms/pkcs11/pkcs11test"
)

// TestPINFileMode: the HSM PIN is a credential like Vault's token file: a PIN file that others
// may read (or its group may write) is refused, as every other key file trustd reads.
func TestPINFileMode(t *testing.T) {
	h := pkcs11test.Start(t)
	h.InitToken(t, token)
	cfg := h.Config(t, token)
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o600, true}, {0o640, true}, {0o644, false}, {0o660, false}} {
		p := filepath.Join(t.TempDir(), "pin")
		if err := os.WriteFile(p, []byte(pkcs11test.PIN+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		cfg.PINFile = p
		s, err := pkcs11.New(context.Background(), cfg, pkcs11.Options{})
		switch {
		case tc.ok && err != nil:
			t.Errorf("mode %v: %v", tc.mode, err)
		case !tc.ok && err == nil:
			t.Errorf("mode %v: accepted a PIN file others may read or the group may write", tc.mode)
		case !tc.ok && !errors.Is(err, kms.ErrDenied):
			t.Errorf("mode %v: %v, want ErrDenied", tc.mode, err)
		}
		if s != nil {
			s.Close()
		}
	}
}
