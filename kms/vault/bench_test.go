package vault_test

import (
	"context"
	"encoding/base64"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/medicus-cloud/trust/internal/benchratio"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/vault"
	"github.com/medicus-cloud/trust/kms/vault/vaulttest"
)

// BenchmarkRatioDataKey prints the cost of GenerateDataKey through the store (name mapping,
// derived-key check cache, retries, strict decoding) over the same transit call made directly
// with vault/api over the same transport, one reused HTTP/2 connection: ratio
// kms-vault-datakey/vault-direct. It also prints what that transport costs a single caller
// against vault/api's HTTP/1.1 keep-alive: ratio vault-http2/vault-http1. (HTTP/2 is the
// store's choice for its throughput under concurrent releases; see kms/vault/client.go.)
func BenchmarkRatioDataKey(b *testing.B) {
	subject, floor, done := dataKeyBenches(b)
	defer done()
	benchratio.Time(b, "kms-vault-datakey/vault-direct", subject, floor)
	srv := vaulttest.Shared(b)
	transit, _ := srv.Mounts(b)
	token := srv.Token(b, 0, vaulttest.PolicyRelease, vaulttest.PolicyAdmin)
	if _, err := srv.DirectClient(token).Logical().Write(transit+"/keys/k", map[string]any{"type": "aes256-gcm96", "derived": true}); err != nil {
		b.Fatal(err)
	}
	digest, _ := caseA.Digest()
	body := map[string]any{"context": base64.StdEncoding.EncodeToString(digest), "bits": 256}
	call := func(lg *api.Logical) func(n int) {
		return func(n int) {
			for range n {
				if _, err := lg.WriteWithContext(context.Background(), transit+"/datakey/plaintext/k", body); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	benchratio.Time(b, "vault-http2/vault-http1", call(srv.DirectClient(token).Logical()), call(srv.ClientWithToken(token).Logical()))
}

// dataKeyBenches returns the store's and the direct transit data-key benchmarks.
func dataKeyBenches(b testing.TB) (subject, floor func(n int), done func()) {
	srv := vaulttest.Shared(b)
	transit, kv := srv.Mounts(b)
	cfg := vault.Config{
		Address: srv.Addr,
		TLS:     vault.TLS{CAFile: srv.CAFile},
		Auth:    vault.Auth{Method: vault.AuthAppRole, AppRole: vault.AppRoleAuth{RoleID: srv.AdminRoleID, SecretIDFile: srv.AdminSecretIDFile}},
		Tenants: map[string]vault.Mapping{"t": {TransitMount: transit, KVMount: kv}},
	}
	ctx := context.Background()
	s, err := vault.New(ctx, cfg, vault.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.CreateKey(ctx, "t/k"); err != nil {
		b.Fatal(err)
	}
	digest, _ := caseA.Digest()
	kctx := base64.StdEncoding.EncodeToString(digest)
	// The floor carries a token with the same policies as the store's login: Vault's ACL
	// evaluation is part of both. It talks HTTP/2 over a reused connection, as the store does.
	direct := srv.DirectClient(srv.Token(b, 0, vaulttest.PolicyRelease, vaulttest.PolicyAdmin)).Logical()
	subject = func(n int) {
		for range n {
			if _, err := s.GenerateDataKey(ctx, kms.MustBind("t/k", caseA)); err != nil {
				b.Fatal(err)
			}
		}
	}
	floor = func(n int) {
		for range n {
			if _, err := direct.WriteWithContext(ctx, transit+"/datakey/plaintext/k", map[string]any{"context": kctx, "bits": 256}); err != nil {
				b.Fatal(err)
			}
		}
	}
	return subject, floor, func() { s.Close() }
}
