package vault_test

import (
	"context"
	"errors"
	"testing"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/vault"
	"github.com/medicus-cloud/trust/kms/vault/vaulttest"
)

// TestShred destroys a per-patient transit key on a real Vault: wrapped keys stop opening with
// kms.ErrShredded, on this store and on a fresh one (another replica), the name is not reused,
// an unknown name is ErrNotFound, and other keys are untouched.
func TestShred(t *testing.T) {
	ctx := context.Background()
	srv := vaulttest.Shared(t)
	cfg := config(t, srv, srv.AdminRoleID, srv.AdminSecretIDFile)
	s := open(t, cfg, vault.Options{})
	const patient, other = "tenant-a/pk-3f9c0a", "tenant-a/pk-77aa01"
	for _, k := range []string{patient, other} {
		if err := s.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	dk, err := s.GenerateDataKey(ctx, kms.MustBind(patient, caseA))
	if err != nil {
		t.Fatal(err)
	}
	odk, _ := s.GenerateDataKey(ctx, kms.MustBind(other, caseA))
	if err := s.ShredKey(ctx, "tenant-a/pk-unknown"); !errors.Is(err, kms.ErrNotFound) {
		t.Fatalf("shred of an unknown key: %v", err)
	}
	if err := s.ShredKey(ctx, patient); err != nil {
		t.Fatal(err)
	}
	replica := open(t, cfg, vault.Options{})
	for name, st := range map[string]*vault.Store{"same store": s, "replica": replica} {
		if _, err := st.UnwrapDataKey(ctx, kms.MustBind(patient, caseA), dk.Wrapped); !errors.Is(err, kms.ErrShredded) {
			t.Errorf("%s: unwrap after shred: %v", name, err)
		}
		if _, err := st.GenerateDataKey(ctx, kms.MustBind(patient, caseA)); !errors.Is(err, kms.ErrShredded) {
			t.Errorf("%s: generate after shred: %v", name, err)
		}
	}
	if err := s.CreateKey(ctx, patient); !errors.Is(err, kms.ErrShredded) {
		t.Errorf("re-create a shredded name: %v", err)
	}
	if err := s.ShredKey(ctx, patient); !errors.Is(err, kms.ErrShredded) {
		t.Errorf("second shred: %v", err)
	}
	if got, err := s.UnwrapDataKey(ctx, kms.MustBind(other, caseA), odk.Wrapped); err != nil || !got.Equal(odk.Plaintext) {
		t.Fatalf("other patient's key after the shred: %v", err)
	}
}
