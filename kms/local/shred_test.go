package local_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/secret"
)

func TestShred(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyring")
	mk := func() *secret.Bytes { return secret.New(bytes.Repeat([]byte{7}, 32)) }
	k, err := local.Open(local.Options{Path: path, MasterKey: mk()})
	if err != nil {
		t.Fatal(err)
	}
	kc := kms.Context{"tenant": "t", "patient": "p"}
	for _, n := range []string{"t/pk-1", "t/pk-2"} {
		if err := k.CreateKey(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	dk, _ := k.GenerateDataKey(ctx, kms.MustBind("t/pk-1", kc))
	odk, _ := k.GenerateDataKey(ctx, kms.MustBind("t/pk-2", kc))
	before, _ := os.ReadFile(path)
	if err := k.ShredKey(ctx, "t/pk-unknown"); !errors.Is(err, kms.ErrNotFound) {
		t.Fatalf("shred of an unknown key: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("a failed shred changed the keyring")
	}
	if err := k.ShredKey(ctx, "t/pk-1"); err != nil {
		t.Fatal(err)
	}
	reopened, err := local.Open(local.Options{Path: path, MasterKey: mk()})
	if err != nil {
		t.Fatal(err)
	}
	for name, st := range map[string]*local.Keyring{"same": k, "reopened": reopened} {
		if _, err := st.UnwrapDataKey(ctx, kms.MustBind("t/pk-1", kc), dk.Wrapped); !errors.Is(err, kms.ErrShredded) {
			t.Errorf("%s: unwrap after shred: %v", name, err)
		}
	}
	if err := k.CreateKey(ctx, "t/pk-1"); !errors.Is(err, kms.ErrShredded) {
		t.Errorf("re-create: %v", err)
	}
	if got, err := k.UnwrapDataKey(ctx, kms.MustBind("t/pk-2", kc), odk.Wrapped); err != nil || !got.Equal(odk.Plaintext) {
		t.Fatalf("other key: %v", err)
	}
}
