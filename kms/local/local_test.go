package local

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/kmstest"
	"github.com/medicus-cloud/trust/secret"
)

func master(b byte) *secret.Bytes { return secret.New(bytes.Repeat([]byte{b}, 32)) }

func TestConformance(t *testing.T) {
	kmstest.Run(t, func(t *testing.T) kmstest.Store {
		k, err := Open(Options{Path: filepath.Join(t.TempDir(), "keyring"), MasterKey: master(7)})
		if err != nil {
			t.Fatal(err)
		}
		return k
	})
}

func TestAtRest(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyring")
	k, err := Open(Options{Path: path, MasterKey: master(7)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.PutSecret(ctx, "s", secret.New([]byte("plaintext-secret-value"))); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte("plaintext-secret-value")) {
		t.Fatal("secret stored in the clear")
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	if _, err := Open(Options{Path: path, MasterKey: master(8)}); err == nil {
		t.Fatal("opened under the wrong master key")
	}
	// A second process sees the first one's writes.
	k2, err := Open(Options{Path: path, MasterKey: master(7)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.PutSecret(ctx, "s", secret.New([]byte("v2"))); err != nil {
		t.Fatal(err)
	}
	got, err := k2.GetSecret(ctx, "s")
	if err != nil || string(got.Value.Reveal()) != "v2" {
		t.Fatalf("reload: %v", err)
	}
	os.Chmod(path, 0o644)
	k3, _ := Open(Options{Path: filepath.Join(t.TempDir(), "x"), MasterKey: master(7)})
	k3.path = path
	if _, err := k3.GetSecret(ctx, "s"); err == nil {
		t.Fatal("world-readable keyring accepted")
	}
}

func TestMinDecryptionVersion(t *testing.T) {
	ctx := context.Background()
	k, _ := Open(Options{Path: filepath.Join(t.TempDir(), "keyring"), MasterKey: master(1)})
	k.CreateKey(ctx, "k")
	old, _ := k.GenerateDataKey(ctx, "k", nil)
	k.RotateKey(ctx, "k")
	if err := k.SetMinDecryptionVersion(ctx, "k", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := k.UnwrapDataKey(ctx, "k", old.Wrapped, nil); !errors.Is(err, kms.ErrBadWrapped) {
		t.Fatalf("old version unwrapped: %v", err)
	}
}
