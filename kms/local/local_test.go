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
	old, _ := k.GenerateDataKey(ctx, kms.MustBind("k", nil))
	k.RotateKey(ctx, "k")
	if err := k.SetMinDecryptionVersion(ctx, "k", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := k.UnwrapDataKey(ctx, kms.MustBind("k", nil), old.Wrapped); !errors.Is(err, kms.ErrBadWrapped) {
		t.Fatalf("old version unwrapped: %v", err)
	}
}

// TestFaults runs the shared fault suite: the keyring file replaced under a running trustd by
// one it cannot read (another master key's, or garbage) fails every call closed until the
// right file is back.
func TestFaults(t *testing.T) {
	var path string
	newStore := func(t *testing.T) kmstest.Store {
		path = filepath.Join(t.TempDir(), "keyring")
		k, err := Open(Options{Path: path, MasterKey: master(7)})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	replace := func(t *testing.T, with func(t *testing.T)) func(*testing.T) {
		good, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		with(t)
		return func(t *testing.T) {
			if err := os.WriteFile(path+".tmp", good, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(path+".tmp", path); err != nil {
				t.Fatal(err)
			}
		}
	}
	kmstest.RunFaults(t, newStore, []kmstest.Fault{
		{Name: "store down", Want: kms.ErrUnavailable, Break: func(t *testing.T, _ kmstest.Store) func(*testing.T) {
			return replace(t, func(t *testing.T) {
				other := filepath.Join(t.TempDir(), "keyring")
				o, err := Open(Options{Path: other, MasterKey: master(8)})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := o.PutSecret(context.Background(), "x/y", secret.New([]byte("a much longer value than before"))); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(other, path); err != nil {
					t.Fatal(err)
				}
			})
		}},
		{Name: "file corrupted", Want: kms.ErrUnavailable, Break: func(t *testing.T, _ kmstest.Store) func(*testing.T) {
			return replace(t, func(t *testing.T) {
				if err := os.WriteFile(path, []byte("not a keyring"), 0o600); err != nil {
					t.Fatal(err)
				}
			})
		}},
	})
}
