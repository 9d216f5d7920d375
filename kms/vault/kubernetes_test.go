package vault_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/vault"
	"github.com/medicus-cloud/trust/kms/vault/vaulttest"
)

// fakeKubernetes answers the TokenReview API the way a cluster does for one service account;
// Vault's Kubernetes auth method (the real one, in the real server) calls it during login.
func fakeKubernetes(t *testing.T, jwt string, reviews *atomic.Int32) *httptest.Server {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" {
			http.NotFound(w, r)
			return
		}
		reviews.Add(1)
		var req struct {
			Spec struct {
				Token string `json:"token"`
			} `json:"spec"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		status := map[string]any{"authenticated": false}
		if req.Spec.Token == jwt {
			status = map[string]any{
				"authenticated": true,
				"user":          map[string]any{"username": "system:serviceaccount:medicus:trustd", "uid": "uid-trustd"},
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status,
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// serviceAccountJWT makes a token shaped like a Kubernetes service-account token.
func serviceAccountJWT(t *testing.T) string {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	enc := base64.RawURLEncoding
	hdr, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT"})
	claims, _ := json.Marshal(map[string]any{
		"iss":                                    "kubernetes/serviceaccount",
		"sub":                                    "system:serviceaccount:medicus:trustd",
		"kubernetes.io/serviceaccount/namespace": "medicus",
		"kubernetes.io/serviceaccount/service-account.name": "trustd",
		"kubernetes.io/serviceaccount/service-account.uid":  "uid-trustd",
	})
	signed := enc.EncodeToString(hdr) + "." + enc.EncodeToString(claims)
	d := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + enc.EncodeToString(sig)
}

func TestKubernetesAuth(t *testing.T) {
	ctx := context.Background()
	srv := vaulttest.Shared(t)
	jwt := serviceAccountJWT(t)
	var reviews atomic.Int32
	k8s := fakeKubernetes(t, jwt, &reviews)

	mount := "kubernetes-" + t.Name()
	if err := srv.Client().Sys().EnableAuthWithOptions(mount, &api.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	srv.Write(t, "auth/"+mount+"/config", map[string]any{
		"kubernetes_host":        k8s.URL,
		"kubernetes_ca_cert":     string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k8s.Certificate().Raw})),
		"disable_local_ca_jwt":   true,
		"disable_iss_validation": true,
	})
	srv.Write(t, "auth/"+mount+"/role/trustd", map[string]any{
		"bound_service_account_names":      "trustd",
		"bound_service_account_namespaces": "medicus",
		"token_policies":                   vaulttest.PolicyRelease + "," + vaulttest.PolicyAdmin,
		"token_ttl":                        "1h",
	})

	cfg := config(t, srv, "", "")
	cfg.Auth = vault.Auth{Method: vault.AuthKubernetes, Kubernetes: vault.KubernetesAuth{
		Mount: mount, Role: "trustd", JWTFile: srv.WriteFile(t, "sa-token", jwt),
	}}
	s := open(t, cfg, vault.Options{})
	if err := s.CreateKey(ctx, "tenant-a/k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GenerateDataKey(ctx, kms.MustBind("tenant-a/k", caseA)); err != nil {
		t.Fatal(err)
	}
	if reviews.Load() < 1 {
		t.Fatal("Vault never asked Kubernetes to review the token")
	}

	// A token the cluster does not vouch for is refused at start.
	cfg.Auth.Kubernetes.JWTFile = srv.WriteFile(t, "sa-token-other", serviceAccountJWT(t))
	if _, err := vault.New(ctx, cfg, vault.Options{}); !errors.Is(err, kms.ErrDenied) {
		t.Fatalf("unknown service-account token: %v", err)
	}
}
