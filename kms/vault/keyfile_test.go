package vault

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCredentialFilePermissions: Vault credentials (token, AppRole IDs, Kubernetes JWT) and the
// TLS client key are refused when others may read them, as master keys are, and nothing is sent
// to Vault with them. 0600 and 0440 (a Kubernetes Secret volume with an fsGroup) are fine.
func TestCredentialFilePermissions(t *testing.T) {
	f := &fakeVault{t: t}
	f.handle = func(r fakeReq) (int, string) {
		return 200, `{"auth":{"client_token":"hvs.x","lease_duration":3600,"renewable":true},"data":{"id":"x","ttl":3600,"renewable":true}}`
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		field string
		auth  func(path string) Auth
	}{
		{"auth.token_file", func(p string) Auth { return Auth{Method: AuthToken, TokenFile: p} }},
		{"auth.approle.secret_id_file", func(p string) Auth {
			return Auth{Method: AuthAppRole, AppRole: AppRoleAuth{RoleID: "r", SecretIDFile: p}}
		}},
		{"auth.approle.role_id_file", func(p string) Auth {
			return Auth{Method: AuthAppRole, AppRole: AppRoleAuth{RoleIDFile: p, SecretIDFile: write("sid-ok", "s", 0o600)}}
		}},
		{"auth.kubernetes.jwt_file", func(p string) Auth {
			return Auth{Method: AuthKubernetes, Kubernetes: KubernetesAuth{Role: "trustd", JWTFile: p}}
		}},
	}
	for _, tc := range cases {
		for _, mode := range []os.FileMode{0o644, 0o604, 0o620, 0o600, 0o440} {
			t.Run(tc.field+"/"+mode.String(), func(t *testing.T) {
				p := write(strings.ReplaceAll(tc.field, ".", "_")+mode.String(), "hvs.cred\n", mode)
				cfg := Config{Address: srv.URL, Auth: tc.auth(p), Tenants: map[string]Mapping{"t": {}}}
				before := len(f.requests())
				s, err := New(context.Background(), cfg, Options{After: instant})
				if err == nil {
					_, err = s.GetSecret(context.Background(), "t/x")
					s.Close()
				}
				bad := mode&0o027 != 0
				refused := err != nil && strings.Contains(err.Error(), "readable by others")
				if bad != refused {
					t.Fatalf("mode %v: err %v, want refused=%v", mode, err, bad)
				}
				if bad && len(f.requests()) != before {
					t.Errorf("mode %v: %d requests reached Vault with the refused credential", mode, len(f.requests())-before)
				}
			})
		}
	}
}

// TestClientKeyPermissions: the TLS client key for Vault is a key file like any other.
func TestClientKeyPermissions(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "trustd"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	dir := t.TempDir()
	cert, keyFile := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("hvs.x"), 0o600)
	for _, mode := range []os.FileMode{0o600, 0o644} {
		if err := os.Chmod(keyFile, mode); err != nil {
			t.Fatal(err)
		}
		s, err := New(context.Background(), Config{Address: "https://127.0.0.1:1", TLS: TLS{CertFile: cert, KeyFile: keyFile},
			Auth: Auth{Method: AuthToken, TokenFile: tok}, Tenants: map[string]Mapping{"t": {}}}, Options{After: instant})
		if err == nil {
			s.Close()
		}
		if refused := err != nil && strings.Contains(err.Error(), "readable by others"); refused != (mode == 0o644) {
			t.Errorf("client key mode %v: %v", mode, err)
		}
	}
}
