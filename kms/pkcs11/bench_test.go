//go:build cgo

package pkcs11_test

import (
	"context"
	"encoding/base64"
	"testing"

	"github.com/medicus-cloud/trust/internal/benchratio"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/pkcs11/pkcs11test"
	"github.com/medicus-cloud/trust/kms/vault/vaulttest"
)

// BenchmarkRatioDataKey prints the cost of a data key from the HSM store (a session from the
// pool, the key's versions looked up and checked in the token, AES-GCM inside the token) over
// the same data key made by Vault's transit engine called directly with vault/api: the floor a
// hospital would otherwise pay for keys in a Vault. ratio kms-pkcs11-datakey/vault-direct.
func BenchmarkRatioDataKey(b *testing.B) {
	ctx := context.Background()
	h := pkcs11test.Start(b)
	h.InitToken(b, token)
	s := open(b, h.Config(b, token))
	if err := s.CreateKey(ctx, "t/k"); err != nil {
		b.Fatal(err)
	}
	srv := vaulttest.Start(b)
	transit, _ := srv.Mounts(b)
	direct := srv.ClientWithToken(srv.Token(b, 0, vaulttest.PolicyRelease, vaulttest.PolicyAdmin)).Logical()
	if _, err := direct.Write(transit+"/keys/k", map[string]any{"type": "aes256-gcm96", "derived": true}); err != nil {
		b.Fatal(err)
	}
	digest, _ := caseA.Digest()
	kctx := base64.StdEncoding.EncodeToString(digest)
	subject := func(n int) {
		for range n {
			if _, err := s.GenerateDataKey(ctx, kms.MustBind("t/k", caseA)); err != nil {
				b.Fatal(err)
			}
		}
	}
	floor := func(n int) {
		for range n {
			if _, err := direct.WriteWithContext(ctx, transit+"/datakey/plaintext/k", map[string]any{"context": kctx, "bits": 256}); err != nil {
				b.Fatal(err)
			}
		}
	}
	benchratio.Time(b, "kms-pkcs11-datakey/vault-direct", subject, floor)
}
