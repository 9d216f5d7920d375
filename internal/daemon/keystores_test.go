package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/enclave/simguest"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/pkcs11"
	"github.com/medicus-cloud/trust/kms/pkcs11/pkcs11test"
	"github.com/medicus-cloud/trust/kms/vault"
	"github.com/medicus-cloud/trust/kms/vault/vaulttest"
	"github.com/medicus-cloud/trust/sdk"
)

func TestMain(m *testing.M) { pkcs11test.Main(m) }

func TestKMSStoresConfig(t *testing.T) {
	c, err := LoadConfig("testdata/kms-stores.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.KMS.Backend != "" || len(c.KMS.Stores) != 4 || c.KMS.Default != "platform" {
		t.Fatalf("kms = %+v", c.KMS)
	}
	if v := c.KMS.Stores["ukf-vault"].Settings.(*vault.Config); v.Namespace != "medicus" || v.TLS.CAFile == "" {
		t.Errorf("ukf-vault = %+v", v)
	}
	if p := c.KMS.Stores["ukhd-hsm"].Settings.(*pkcs11.Config); p.PINEnv != "UKHD_HSM_PIN" {
		t.Errorf("ukhd-hsm = %+v", p)
	}

	// The single-store form becomes one store named default that serves everyone.
	legacy := &Config{KMS: KMSConfig{Backend: "vault", Vault: &vault.Config{Address: "https://v"}}}
	stores, routes, def := legacy.KMS.keyStores()
	if len(stores) != 1 || stores[DefaultStore].Settings != legacy.KMS.Vault || len(routes) != 0 || def != DefaultStore {
		t.Errorf("single-store migration: %v %v %q", stores, routes, def)
	}

	dir := t.TempDir()
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown backend", "kms:\n  stores:\n    a: {backend: hsm}\n", `backend "hsm"`},
		{"section of another backend", "kms:\n  stores:\n    a: {backend: local, vault: {}}\n", "section vault, but backend is local"},
		{"unknown field in a section", "kms:\n  stores:\n    a: {backend: pkcs11, pkcs11: {module: m, token: t, pin: '1234'}}\n", "field pin not found"},
		{"two sections", "kms:\n  stores:\n    a: {backend: local, local: {}, vault: {}}\n", "one section"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
		os.WriteFile(p, []byte(tc.yaml), 0o600)
		if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		kms  KMSConfig
		want string
	}{
		{"both forms", KMSConfig{Backend: "vault", Stores: map[string]StoreConfig{"a": {Backend: "local", Settings: &LocalStoreConfig{}}}, Default: "a"}, "single-store form"},
		{"route to nowhere", KMSConfig{Stores: map[string]StoreConfig{"a": {Backend: "local", Settings: &LocalStoreConfig{}}}, Routes: map[string]string{"t": "b"}}, `kms.routes.t: no store named "b"`},
		{"bad pkcs11", KMSConfig{Stores: map[string]StoreConfig{"h": {Backend: "pkcs11", Settings: &pkcs11.Config{Module: "m", Token: "t"}}}, Default: "h"}, "kms.stores.h.pkcs11: pin_file or pin_env"},
		{"routes without stores", KMSConfig{Routes: map[string]string{"t": "a"}}, "need kms.stores"},
	} {
		c := &Config{Dev: true, Policy: "p", KMS: tc.kms}
		c.Defaults()
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestKeyCustodyRouting runs trustd with four key stores: uk-freiburg's own Vault, the
// platform's Vault (uk-koeln), uk-heidelberg's HSM (SoftHSM2) and the local keyring for a test
// tenant. An operator creates and rotates each tenant's key through the admin API (what
// trustctl admin create-key and rotate-key call), which puts it in the tenant's store; a
// workload releases from each; then uk-freiburg's Vault stops, and its tenant gets
// Unavailable while the others keep releasing, and health names the store.
func TestKeyCustodyRouting(t *testing.T) {
	ctx := context.Background()
	h := pkcs11test.Start(t)
	h.InitToken(t, "ukhd-kek")
	platform, ukf := vaulttest.Start(t), vaulttest.Start(t)
	vcfg := func(srv *vaulttest.Server, tenant string) *vault.Config {
		tm, kv := srv.Mounts(t)
		return &vault.Config{Address: srv.Addr, TLS: vault.TLS{CAFile: srv.CAFile},
			Auth:    vault.Auth{Method: vault.AuthAppRole, AppRole: vault.AppRoleAuth{RoleID: srv.AdminRoleID, SecretIDFile: srv.AdminSecretIDFile}},
			Tenants: map[string]vault.Mapping{tenant: {TransitMount: tm, KVMount: kv}},
			Timeout: vault.Duration(2 * time.Second), Retry: vault.Retry{Attempts: 2, MinBackoff: vault.Duration(10 * time.Millisecond)}}
	}
	ukfCfg, platformCfg := vcfg(ukf, "uk-freiburg"), vcfg(platform, "uk-koeln")
	hsmCfg := h.Config(t, "ukhd-kek")
	hsmCfg.PINFile, hsmCfg.PINEnv = "", "UKHD_HSM_PIN"

	dir := t.TempDir()
	ca, admins := newCA(t, "server CA"), newCA(t, "admin CA")
	sc, sk := ca.issue(t, "trustd", "", true)
	cfg := &Config{Dev: true, DataDir: filepath.Join(dir, "data"), Policy: "testdata/custody-policy.yaml", Listen: "127.0.0.1:0",
		TLS: TLSConfig{CertFile: write(t, dir, "server.pem", string(sc)), KeyFile: write(t, dir, "server.key", string(sk)),
			ClientCAFile: write(t, dir, "admin-ca.pem", string(admins.pem))},
		KMS: KMSConfig{
			Stores: map[string]StoreConfig{
				"platform":  {Backend: "vault", Settings: platformCfg},
				"ukf-vault": {Backend: "vault", Settings: ukfCfg},
				"ukhd-hsm":  {Backend: "pkcs11", Settings: &hsmCfg},
				"test":      {Backend: "local", Settings: &LocalStoreConfig{}},
			},
			Routes:  map[string]string{"uk-freiburg": "ukf-vault", "uk-heidelberg": "ukhd-hsm", "test-clinic": "test"},
			Default: "platform",
		}}
	keyStoreHealthInterval = 200 * time.Millisecond
	env := Env{LookupEnv: func(k string) (string, bool) {
		if k == "UKHD_HSM_PIN" {
			return pkcs11test.PIN, true
		}
		return "", false
	}}
	d, err := New(ctx, cfg, env, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	addr := serve(t, d)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	cp, kp := admins.issue(t, "operator-person", "operator", false)
	cert, _ := tls.X509KeyPair(cp, kp)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	admin := pb.NewAdminClient(conn)

	tenants := []string{"uk-freiburg", "uk-koeln", "uk-heidelberg", "test-clinic"}
	for _, tn := range tenants {
		if _, err := admin.CreateKey(ctx, &pb.CreateKeyRequest{Name: tn + "/records"}); err != nil {
			t.Fatalf("create-key %s: %v", tn, err)
		}
		if _, err := admin.RotateKey(ctx, &pb.RotateKeyRequest{Name: tn + "/records"}); err != nil {
			t.Fatalf("rotate-key %s: %v", tn, err)
		}
		if _, err := admin.PutSecret(ctx, &pb.PutSecretRequest{Name: tn + "/api-token", Value: []byte("tok")}); err != nil {
			t.Fatalf("put-secret %s: %v", tn, err)
		}
	}
	// Each key is where the routing says, at version 2, and nowhere else.
	for srv, c := range map[*vaulttest.Server]*vault.Config{ukf: ukfCfg, platform: platformCfg} {
		for tenant, m := range c.Tenants {
			sec, err := srv.Client().Logical().Read(m.TransitMount + "/keys/records")
			if err != nil || sec == nil || sec.Data["latest_version"] == nil || fmt.Sprint(sec.Data["latest_version"]) != "2" {
				t.Errorf("%s's key in its Vault: %v %v", tenant, sec, err)
			}
		}
	}
	other, err := vault.New(ctx, *vcfg(platform, "uk-freiburg"), vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.GenerateDataKey(ctx, kms.MustBind("uk-freiburg/records", nil)); !errors.Is(err, kms.ErrNotFound) {
		t.Errorf("uk-freiburg's key in the platform Vault: %v", err)
	}
	hsm, err := pkcs11.New(ctx, hsmCfg, pkcs11.Options{LookupEnv: env.LookupEnv})
	if err != nil {
		t.Fatal(err)
	}
	defer hsm.Close()
	if dk, err := hsm.GenerateDataKey(ctx, kms.MustBind("uk-heidelberg/records", nil)); err != nil || dk.Wrapped[7] != 2 {
		t.Errorf("uk-heidelberg's key in its HSM at version 2: %v", err)
	}

	m, _ := hex.DecodeString("6d656469637573207472757374206578616d706c652068656c6c6f20696d616765207631000000000000000000000000")
	c, err := sdk.New(ctx, sdk.Options{Addr: addr, TLS: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13},
		Provider: simguest.NewInsecure(simguest.Options{Measurement: m, SVN: 1})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	type held struct {
		key     []byte
		wrapped []byte
	}
	keys := map[string]held{}
	for _, tn := range tenants {
		kc := kms.Context{"tenant": tn}
		k, w, err := c.GenerateDataKey(ctx, tn+"/records", kc)
		if err != nil {
			t.Fatalf("release from %s's store: %v", tn, err)
		}
		keys[tn] = held{k.Reveal(), w}
		if _, err := c.Secret(ctx, tn+"/api-token"); err != nil {
			t.Fatalf("secret from %s's store: %v", tn, err)
		}
	}

	ukf.Stop(t)
	for _, tn := range tenants {
		kc := kms.Context{"tenant": tn}
		k, _, gerr := c.GenerateDataKey(ctx, tn+"/records", kc)
		un, uerr := c.UnwrapDataKey(ctx, tn+"/records", keys[tn].wrapped, kc)
		if tn == "uk-freiburg" {
			if k != nil || un != nil || status.Code(gerr) != codes.Unavailable || status.Code(uerr) != codes.Unavailable {
				t.Errorf("uk-freiburg with its Vault down: %v / %v, want Unavailable and nothing released", gerr, uerr)
			}
			continue
		}
		if gerr != nil || uerr != nil || string(un.Reveal()) != string(keys[tn].key) {
			t.Errorf("%s while uk-freiburg's Vault is down: %v / %v", tn, gerr, uerr)
		}
	}
	hc := healthpb.NewHealthClient(conn)
	want := map[string]healthpb.HealthCheckResponse_ServingStatus{"": healthpb.HealthCheckResponse_SERVING,
		KeyStoreHealthPrefix + "ukf-vault": healthpb.HealthCheckResponse_NOT_SERVING,
		KeyStoreHealthPrefix + "platform":  healthpb.HealthCheckResponse_SERVING,
		KeyStoreHealthPrefix + "ukhd-hsm":  healthpb.HealthCheckResponse_SERVING,
		KeyStoreHealthPrefix + "test":      healthpb.HealthCheckResponse_SERVING}
	deadline := time.Now().Add(20 * time.Second)
	for svc, st := range want {
		for {
			r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err == nil && r.Status == st {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("health of %q: %v %v, want %v", svc, r, err, st)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
