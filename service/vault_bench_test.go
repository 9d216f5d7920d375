package service_test

import (
	"context"
	"encoding/base64"
	"testing"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/internal/benchratio"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/vault"
	"github.com/medicus-cloud/trust/kms/vault/vaulttest"
	"github.com/medicus-cloud/trust/sdk"
	"github.com/medicus-cloud/trust/seal"
)

// BenchmarkRatioVaultRelease compares one GenerateDataKey through trustd (token cached: token
// check, grant and context check, transit call, HPKE seal, durable audit append... here the
// in-memory log, HPKE open in the SDK) with the same transit call made directly with the Vault
// client over the store's transport (one reused HTTP/2 connection): ratio
// release-via-trustd/vault-direct.
//
// "ratio release-floor/vault-direct" is the least any release through a gRPC service can cost
// against the same direct call: the transit call plus one bare round trip on the same
// connection (GetChallenge, which only draws a nonce) plus the HPKE open the SDK makes of what
// it receives. The seal's encapsulation is left out: trustd runs it while the key store
// answers.
func BenchmarkRatioVaultRelease(b *testing.B) {
	ctx := context.Background()
	srv := vaulttest.Start(b)
	transit, kv := srv.Mounts(b)
	store, err := vault.New(ctx, vault.Config{
		Address: srv.Addr,
		TLS:     vault.TLS{CAFile: srv.CAFile},
		Auth:    vault.Auth{Method: vault.AuthAppRole, AppRole: vault.AppRoleAuth{RoleID: srv.AdminRoleID, SecretIDFile: srv.AdminSecretIDFile}},
		Tenants: map[string]vault.Mapping{"hello": {TransitMount: transit, KVMount: kv}},
	}, vault.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if err := store.CreateKey(ctx, "hello/records"); err != nil {
		b.Fatal(err)
	}
	h := startWith(b, store)
	c, err := sdk.New(ctx, sdk.Options{Conn: h.conn, Provider: hello()})
	if err != nil {
		b.Fatal(err)
	}
	kc := kms.Context{"tenant": "uk-freiburg", "case": "42"}
	if _, err := c.Attest(ctx); err != nil {
		b.Fatal(err)
	}
	digest, _ := kc.Digest()
	direct := srv.DirectClient(srv.Token(b, 0, vaulttest.PolicyRelease, vaulttest.PolicyAdmin)).Logical()
	viaTrustd := func(n int) {
		for range n {
			if _, _, err := c.GenerateDataKey(ctx, "hello/records", kc); err != nil {
				b.Fatal(err)
			}
		}
	}
	vaultDirect := func(n int) {
		for range n {
			if _, err := direct.WriteWithContext(ctx, transit+"/datakey/plaintext/records",
				map[string]any{"context": base64.StdEncoding.EncodeToString(digest), "bits": 256}); err != nil {
				b.Fatal(err)
			}
		}
	}
	benchratio.Time(b, "release-via-trustd/vault-direct", viaTrustd, vaultDirect)

	wk, err := seal.GenerateKey(seal.X25519)
	if err != nil {
		b.Fatal(err)
	}
	aad := seal.ReleaseAAD("0123456789abcdef01234567", "hello/records", []byte("tenant=uk-freiburg"))
	sealed, err := wk.Public().Seal(aad, make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	least := func(n int) {
		for range n {
			vaultDirect(1)
			if _, err := h.rpc.GetChallenge(ctx, &pb.GetChallengeRequest{}); err != nil {
				b.Fatal(err)
			}
			if _, err := wk.Open(aad, sealed); err != nil {
				b.Fatal(err)
			}
		}
	}
	benchratio.Time(b, "release-floor/vault-direct", least, vaultDirect)
}
