package vault_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/kmstest"
	"github.com/medicus-cloud/trust/kms/vault"
	"github.com/medicus-cloud/trust/kms/vault/vaulttest"
)

// TestFaults breaks a Vault of its own in the ways production does and checks that each is a
// clear error with nothing released, and that the same store recovers once Vault is back.
func TestFaults(t *testing.T) {
	srv := vaulttest.Start(t)
	cfg := config(t, srv, srv.AdminRoleID, srv.AdminSecretIDFile)
	cfg.Timeout = vault.Duration(2 * time.Second)
	cfg.Retry = vault.Retry{Attempts: 2, MinBackoff: vault.Duration(10 * time.Millisecond), MaxBackoff: vault.Duration(50 * time.Millisecond)}
	s := open(t, cfg, vault.Options{})
	ctx := context.Background()
	const k = "tenant-a/records"
	if err := s.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	dk, err := s.GenerateDataKey(ctx, kms.MustBind(k, caseA))
	if err != nil {
		t.Fatal(err)
	}

	// works checks that a release succeeds again, allowing for Vault settling down.
	works := func(t *testing.T) {
		t.Helper()
		var err error
		for i := 0; i < 50; i++ {
			var got *kms.DataKey
			if got, err = s.GenerateDataKey(ctx, kms.MustBind(k, caseA)); err == nil && got.Plaintext.Len() == kms.DataKeySize {
				un, err := s.UnwrapDataKey(ctx, kms.MustBind(k, caseA), dk.Wrapped)
				if err != nil || !un.Equal(dk.Plaintext) {
					t.Fatalf("unwrap after recovery: %v", err)
				}
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("no recovery: %v", err)
	}
	// fails checks that every release path fails with want and releases nothing.
	fails := func(t *testing.T, want error, text string) {
		t.Helper()
		got, err := s.GenerateDataKey(ctx, kms.MustBind(k, caseA))
		t.Logf("error seen: %v", err)
		if got != nil || !errors.Is(err, want) || !strings.Contains(err.Error(), text) {
			t.Errorf("GenerateDataKey: %v, want %v mentioning %q", err, want, text)
		}
		un, err := s.UnwrapDataKey(ctx, kms.MustBind(k, caseA), dk.Wrapped)
		if un != nil || !errors.Is(err, want) {
			t.Errorf("UnwrapDataKey: %v, want %v", err, want)
		}
		sec, err := s.GetSecret(ctx, "tenant-a/api-token")
		if sec != nil || !errors.Is(err, want) {
			t.Errorf("GetSecret: %v, want %v", err, want)
		}
	}

	t.Run("sealed", func(t *testing.T) {
		srv.Seal(t)
		fails(t, kms.ErrUnavailable, "sealed")
		srv.Unseal(t)
		works(t)
	})
	t.Run("stopped", func(t *testing.T) {
		srv.Stop(t)
		fails(t, kms.ErrUnavailable, "unavailable")
		srv.Start(t)
		works(t)
	})
	t.Run("token revoked", func(t *testing.T) {
		srv.RevokeLogins(t)
		// The store finds its token dead and logs in again within the same call.
		works(t)
	})
	t.Run("secret ID revoked too", func(t *testing.T) {
		srv.Write(t, "auth/approle/role/"+vaulttest.RoleAdmin+"/secret-id/destroy", map[string]any{"secret_id": readFile(t, srv.AdminSecretIDFile)})
		srv.RevokeLogins(t)
		time.Sleep(600 * time.Millisecond) // past the login rate limit
		fails(t, kms.ErrDenied, "login")
		// A new secret ID delivered to the file: back without a restart.
		sid := srv.Write(t, "auth/approle/role/"+vaulttest.RoleAdmin+"/secret-id", nil)
		srv.WriteFile(t, "trustd-admin.secret-id", sid.Data["secret_id"].(string))
		time.Sleep(600 * time.Millisecond)
		works(t)
	})
	t.Run("missing key", func(t *testing.T) {
		if _, err := s.GenerateDataKey(ctx, kms.MustBind("tenant-a/nope", caseA)); !errors.Is(err, kms.ErrNotFound) {
			t.Errorf("missing key: %v", err)
		}
		if _, err := s.UnwrapDataKey(ctx, kms.MustBind("tenant-a/nope", caseA), dk.Wrapped); !errors.Is(err, kms.ErrNotFound) {
			t.Errorf("unwrap with a missing key: %v", err)
		}
	})
	t.Run("mount removed", func(t *testing.T) {
		tm := cfg.Tenants["tenant-a"].TransitMount
		if err := srv.Client().Sys().Unmount(tm); err != nil {
			t.Fatal(err)
		}
		// The release role's policy still covers the path, so Vault says 404: not found.
		_, err := s.GenerateDataKey(ctx, kms.MustBind("tenant-a/other", caseA))
		if !errors.Is(err, kms.ErrNotFound) && !errors.Is(err, kms.ErrDenied) {
			t.Errorf("key on a removed mount: %v", err)
		}
	})
}

func TestStartWhileVaultIsDown(t *testing.T) {
	srv := vaulttest.Start(t)
	cfg := config(t, srv, srv.AdminRoleID, srv.AdminSecretIDFile)
	cfg.Retry = vault.Retry{Attempts: 1}
	srv.Stop(t)
	s := open(t, cfg, vault.Options{})
	ctx := context.Background()
	if err := s.CreateKey(ctx, "tenant-a/k"); !errors.Is(err, kms.ErrUnavailable) {
		t.Fatalf("Vault down: %v", err)
	}
	srv.Start(t)
	var err error
	for i := 0; i < 50; i++ {
		if err = s.CreateKey(ctx, "tenant-a/k"); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no recovery after Vault came up: %v", err)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestConformanceFaults runs the shared fault suite: Vault stopped, sealed, and the key
// deleted under a running store.
func TestConformanceFaults(t *testing.T) {
	var srv *vaulttest.Server
	var cfg vault.Config
	newStore := func(t *testing.T) kmstest.Store {
		if strings.HasSuffix(t.Name(), "key_missing") {
			srv = vaulttest.Shared(t)
		} else {
			srv = vaulttest.Start(t) // its own: stopping or sealing the shared one would hit others
		}
		cfg = config(t, srv, srv.AdminRoleID, srv.AdminSecretIDFile)
		cfg.Timeout = vault.Duration(2 * time.Second)
		cfg.Retry = vault.Retry{Attempts: 2, MinBackoff: vault.Duration(10 * time.Millisecond), MaxBackoff: vault.Duration(50 * time.Millisecond)}
		return open(t, cfg, vault.Options{})
	}
	kmstest.RunFaults(t, newStore, []kmstest.Fault{
		{Name: "store down", Want: kms.ErrUnavailable, Break: func(t *testing.T, _ kmstest.Store) func(*testing.T) {
			srv.Stop(t)
			return func(t *testing.T) { srv.Start(t) }
		}},
		{Name: "sealed", Want: kms.ErrUnavailable, Break: func(t *testing.T, _ kmstest.Store) func(*testing.T) {
			srv.Seal(t)
			return func(t *testing.T) { srv.Unseal(t) }
		}},
		{Name: "key missing", Want: kms.ErrNotFound, KeyOnly: true, Break: func(t *testing.T, _ kmstest.Store) func(*testing.T) {
			p := cfg.Tenants["tenant-a"].TransitMount + "/keys/records"
			srv.Write(t, p+"/config", map[string]any{"deletion_allowed": true})
			if _, err := srv.Client().Logical().Delete(p); err != nil {
				t.Fatal(err)
			}
			return nil
		}},
	})
}
