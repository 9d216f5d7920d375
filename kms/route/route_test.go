package route_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/kmstest"
	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/kms/pkcs11"
	"github.com/medicus-cloud/trust/kms/pkcs11/pkcs11test"
	"github.com/medicus-cloud/trust/kms/route"
	"github.com/medicus-cloud/trust/kms/vault"
	"github.com/medicus-cloud/trust/kms/vault/vaulttest"
	"github.com/medicus-cloud/trust/secret"
)

func TestMain(m *testing.M) { pkcs11test.Main(m) }

const hsmToken = "route-test"

func keyring(t *testing.T) *local.Keyring {
	t.Helper()
	k, err := local.Open(local.Options{Path: filepath.Join(t.TempDir(), "keyring"), MasterKey: secret.New(make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// vaultStore opens a store on srv for the given tenants (and, with global, one-segment names)
// on fresh mounts.
func vaultStore(t *testing.T, srv *vaulttest.Server, global bool, tenants ...string) *vault.Store {
	t.Helper()
	cfg := vault.Config{
		Address: srv.Addr,
		TLS:     vault.TLS{CAFile: srv.CAFile},
		Auth:    vault.Auth{Method: vault.AuthAppRole, AppRole: vault.AppRoleAuth{RoleID: srv.AdminRoleID, SecretIDFile: srv.AdminSecretIDFile}},
		Tenants: map[string]vault.Mapping{},
		Timeout: vault.Duration(2 * time.Second),
		Retry:   vault.Retry{Attempts: 2, MinBackoff: vault.Duration(10 * time.Millisecond), MaxBackoff: vault.Duration(50 * time.Millisecond)},
	}
	for _, tn := range tenants {
		tm, kv := srv.Mounts(t)
		cfg.Tenants[tn] = vault.Mapping{TransitMount: tm, KVMount: kv}
	}
	if global {
		tm, kv := srv.Mounts(t)
		cfg.Global = &vault.Mapping{TransitMount: tm, KVMount: kv}
	}
	s, err := vault.New(context.Background(), cfg, vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func hsmStore(t *testing.T) *pkcs11.Store {
	t.Helper()
	h := pkcs11test.Start(t)
	h.InitToken(t, hsmToken)
	s, err := pkcs11.New(context.Background(), h.Config(t, hsmToken), pkcs11.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustRouter(t *testing.T, o route.Options) *route.Router {
	t.Helper()
	r, err := route.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestConformance runs the suite through a router that sends tenant-a to one store and the
// one-segment names to another, for each backend in turn.
func TestConformance(t *testing.T) {
	t.Run("local", func(t *testing.T) {
		kmstest.Run(t, func(t *testing.T) kmstest.Store {
			return mustRouter(t, route.Options{Stores: map[string]route.Store{"a": keyring(t), "b": keyring(t)},
				Routes: map[string]string{"tenant-a": "a"}, Default: "b"})
		})
	})
	t.Run("pkcs11", func(t *testing.T) {
		kmstest.Run(t, func(t *testing.T) kmstest.Store {
			return mustRouter(t, route.Options{Stores: map[string]route.Store{"hsm": hsmStore(t), "local": keyring(t)},
				Routes: map[string]string{"tenant-a": "hsm"}, Default: "local"})
		})
	})
	t.Run("vault", func(t *testing.T) {
		srv := vaulttest.Start(t)
		kmstest.Run(t, func(t *testing.T) kmstest.Store {
			return mustRouter(t, route.Options{Stores: map[string]route.Store{"vault": vaultStore(t, srv, true, "tenant-a")},
				Default: "vault"})
		})
	})
}

func TestNew(t *testing.T) {
	k := keyring(t)
	for _, tc := range []struct {
		name string
		o    route.Options
		want string
	}{
		{"no stores", route.Options{}, "no key stores"},
		{"unknown store in route", route.Options{Stores: map[string]route.Store{"a": k}, Routes: map[string]string{"t": "b"}, Default: "a"}, `routes.t: no store named "b"`},
		{"unknown default", route.Options{Stores: map[string]route.Store{"a": k}, Routes: map[string]string{"t": "a"}, Default: "x"}, `default: no store named "x"`},
		{"unused store", route.Options{Stores: map[string]route.Store{"a": k, "b": k}, Default: "a"}, "stores.b: no route"},
		{"bad tenant", route.Options{Stores: map[string]route.Store{"a": k}, Routes: map[string]string{"T/x": "a"}}, `tenant "T/x"`},
		{"bad store name", route.Options{Stores: map[string]route.Store{"A B": k}, Default: "A B"}, `stores: "A B"`},
	} {
		if _, err := route.New(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestRoutingAndMetrics(t *testing.T) {
	ctx := context.Background()
	a, b := keyring(t), keyring(t)
	reg := prometheus.NewRegistry()
	r := mustRouter(t, route.Options{Stores: map[string]route.Store{"a": a, "b": b},
		Routes: map[string]string{"uk-freiburg": "a", "uk-koeln": "b"}, Registerer: reg})
	for _, n := range []string{"uk-freiburg/records", "uk-koeln/records"} {
		if err := r.CreateKey(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]string{"uk-freiburg/records": "uk-freiburg", "uk-koeln/x/y": "uk-koeln", "uk-ulm/records": "", "records": ""} {
		if got, routed := r.Tenant(name); routed != (want != "") || routed && got != want {
			t.Errorf("Tenant(%q) = %q, %v; want %q", name, got, routed, want)
		}
	}
	// Each key is in its tenant's store only.
	if _, err := a.GenerateDataKey(ctx, kms.MustBind("uk-freiburg/records", nil)); err != nil {
		t.Errorf("uk-freiburg's key not in store a: %v", err)
	}
	if _, err := b.GenerateDataKey(ctx, kms.MustBind("uk-freiburg/records", nil)); !errors.Is(err, kms.ErrNotFound) {
		t.Errorf("uk-freiburg's key in store b: %v", err)
	}
	for name, want := range map[string]error{
		"uk-mannheim/records": kms.ErrNotFound, // no route, no default
		"signing-root":        kms.ErrNotFound,
		"../uk-koeln/records": kms.ErrInvalidName,
	} {
		if dk, err := r.GenerateDataKey(ctx, bindOrZero(name, nil)); dk != nil || !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	if s, err := r.StoreOf("uk-koeln/x"); err != nil || s != "b" {
		t.Errorf("StoreOf = %q, %v", s, err)
	}
	if _, err := r.GenerateDataKey(ctx, kms.MustBind("uk-koeln/records", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GenerateDataKey(ctx, kms.MustBind("uk-koeln/missing", nil)); !errors.Is(err, kms.ErrNotFound) {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(mustCounter(t, reg, "b", "generate", "ok")); got != 1 {
		t.Errorf("store b generate ok = %v", got)
	}
	if got := testutil.ToFloat64(mustCounter(t, reg, "b", "generate", "not_found")); got != 1 {
		t.Errorf("store b generate not_found = %v", got)
	}
	if n := testutil.CollectAndCount(reg, route.NameUp); n != 2 {
		t.Errorf("%d up series, want one per store", n)
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, store, op, result string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
	for _, mf := range mfs {
		if mf.GetName() != route.NameRequests {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["store"] == store && l["op"] == op && l["result"] == result {
				c.Add(m.GetCounter().GetValue())
			}
		}
	}
	return c
}

// TestOneStoreDown runs two real Vault servers, a hospital's own and the platform's, beside a
// local keyring for a test tenant and a SoftHSM2 token for a third hospital. It stops the
// hospital's Vault and checks that its tenant fails closed with kms.ErrUnavailable (the service
// answers Unavailable) while every other tenant keeps releasing, and that health and metrics
// name the store that is down.
func TestOneStoreDown(t *testing.T) {
	ctx := context.Background()
	platform, ukf := vaulttest.Start(t), vaulttest.Start(t)
	reg := prometheus.NewRegistry()
	r := mustRouter(t, route.Options{
		Stores: map[string]route.Store{
			"ukf-vault":      vaultStore(t, ukf, false, "uk-freiburg"),
			"platform-vault": vaultStore(t, platform, true, "uk-koeln", "praxis-nord"),
			"ukhd-hsm":       hsmStore(t),
			"test":           keyring(t),
		},
		Routes:     map[string]string{"uk-freiburg": "ukf-vault", "uk-heidelberg": "ukhd-hsm", "test-clinic": "test"},
		Default:    "platform-vault",
		Registerer: reg,
	})
	tenants := []string{"uk-freiburg", "uk-koeln", "praxis-nord", "uk-heidelberg", "test-clinic"}
	wrapped := map[string]*kms.DataKey{}
	for _, tn := range tenants {
		if err := r.CreateKey(ctx, tn+"/records"); err != nil {
			t.Fatalf("%s: %v", tn, err)
		}
		if _, err := r.PutSecret(ctx, tn+"/api-token", secret.New([]byte("tok-"+tn))); err != nil {
			t.Fatalf("%s: %v", tn, err)
		}
		dk, err := r.GenerateDataKey(ctx, kms.MustBind(tn+"/records", kms.Context{"tenant": tn}))
		if err != nil {
			t.Fatalf("%s: %v", tn, err)
		}
		wrapped[tn] = dk
	}
	for name, err := range r.Check(ctx) {
		if err != nil {
			t.Fatalf("store %s unhealthy before the outage: %v", name, err)
		}
	}

	ukf.Stop(t)

	// The others keep releasing, concurrently with the failing tenant's calls.
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for _, tn := range tenants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				kc := kms.Context{"tenant": tn}
				dk, gerr := r.GenerateDataKey(ctx, kms.MustBind(tn+"/records", kc))
				un, uerr := r.UnwrapDataKey(ctx, kms.MustBind(tn+"/records", kc), wrapped[tn].Wrapped)
				sec, serr := r.GetSecret(ctx, tn+"/api-token")
				if tn == "uk-freiburg" {
					if dk != nil || un != nil || sec != nil {
						errs <- errors.New("uk-freiburg: released while its Vault is down")
					}
					for _, err := range []error{gerr, uerr, serr} {
						if !errors.Is(err, kms.ErrUnavailable) {
							errs <- errors.New("uk-freiburg: " + errString(err) + ", want ErrUnavailable")
						}
					}
					continue
				}
				if gerr != nil || uerr != nil || serr != nil || !un.Equal(wrapped[tn].Plaintext) || string(sec.Value.Reveal()) != "tok-"+tn {
					errs <- errors.New(tn + ": failed while another tenant's store is down: " + errString(errors.Join(gerr, uerr, serr)))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	health := r.Check(ctx)
	for name, err := range health {
		if (name == "ukf-vault") != (err != nil) {
			t.Errorf("health of %s: %v", name, err)
		}
	}
	if !errors.Is(health["ukf-vault"], kms.ErrUnavailable) {
		t.Errorf("health of the stopped Vault: %v", health["ukf-vault"])
	}
	if got := testutil.ToFloat64(mustCounter(t, reg, "ukf-vault", "generate", "unavailable")); got != 5 {
		t.Errorf("ukf-vault generate unavailable = %v, want 5", got)
	}
	if got := testutil.ToFloat64(mustCounter(t, reg, "platform-vault", "generate", "ok")); got != 12 {
		t.Errorf("platform-vault generate ok = %v, want 12", got)
	}

	// Back, and the hospital's tenant releases again without a restart.
	ukf.Start(t)
	var err error
	for range 50 {
		var un *secret.Bytes
		if un, err = r.UnwrapDataKey(ctx, kms.MustBind("uk-freiburg/records", kms.Context{"tenant": "uk-freiburg"}), wrapped["uk-freiburg"].Wrapped); err == nil {
			if !un.Equal(wrapped["uk-freiburg"].Plaintext) {
				t.Fatal("wrong key after recovery")
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("no recovery: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// TestFaults breaks one store behind the router in each way and checks its tenants fail
// closed.
func TestFaults(t *testing.T) {
	h := pkcs11test.Start(t)
	h.InitToken(t, "route-removable")
	var srv *vaulttest.Server
	var hsm *pkcs11.Store
	newStore := func(t *testing.T) kmstest.Store {
		switch t.Name() {
		case "TestFaults/store_down":
			srv = vaulttest.Start(t)
			return mustRouter(t, route.Options{Stores: map[string]route.Store{"v": vaultStore(t, srv, false, "tenant-a"), "l": keyring(t)},
				Routes: map[string]string{"tenant-a": "v"}, Default: "l"})
		default:
			cfg := h.Config(t, "route-removable")
			var err error
			if hsm, err = pkcs11.New(context.Background(), cfg, pkcs11.Options{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { hsm.Close() })
			return mustRouter(t, route.Options{Stores: map[string]route.Store{"h": hsm, "l": keyring(t)},
				Routes: map[string]string{"tenant-a": "h"}, Default: "l"})
		}
	}
	kmstest.RunFaults(t, newStore, []kmstest.Fault{
		{Name: "store down", Want: kms.ErrUnavailable, Break: func(t *testing.T, _ kmstest.Store) func(*testing.T) {
			srv.Stop(t)
			return func(t *testing.T) { srv.Start(t) }
		}},
		{Name: "token removed", Want: kms.ErrUnavailable, Break: func(t *testing.T, _ kmstest.Store) func(*testing.T) {
			reinsert := h.RemoveToken(t, "route-removable")
			return func(*testing.T) { reinsert() }
		}},
	})
}

// TestShredThroughRouter: the admin API's shred reaches the tenant's own store through the
// router, and only that store; an unknown key is NotFound and changes nothing.
func TestShredThroughRouter(t *testing.T) {
	ctx := context.Background()
	a, b := keyring(t), keyring(t)
	r := mustRouter(t, route.Options{Stores: map[string]route.Store{"a": a, "b": b},
		Routes: map[string]string{"tenant-a": "a"}, Default: "b"})
	for _, n := range []string{"tenant-a/patient-1", "tenant-b/patient-1"} {
		if err := r.CreateKey(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	dk, err := r.GenerateDataKey(ctx, kms.MustBind("tenant-a/patient-1", kms.Context{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ShredKey(ctx, "tenant-a/unknown"); !errors.Is(err, kms.ErrNotFound) {
		t.Fatalf("shred of an unknown key: %v, want ErrNotFound", err)
	}
	if err := r.ShredKey(ctx, "tenant-a/patient-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.UnwrapDataKey(ctx, kms.MustBind("tenant-a/patient-1", kms.Context{}), dk.Wrapped); !errors.Is(err, kms.ErrShredded) {
		t.Fatalf("unwrap after shred in the tenant's store: %v, want ErrShredded", err)
	}
	if _, err := r.UnwrapDataKey(ctx, kms.MustBind("tenant-a/patient-1", kms.Context{}), dk.Wrapped); !errors.Is(err, kms.ErrShredded) {
		t.Fatalf("unwrap after shred through the router: %v, want ErrShredded", err)
	}
	if _, err := r.GenerateDataKey(ctx, kms.MustBind("tenant-b/patient-1", kms.Context{})); err != nil {
		t.Fatalf("the other tenant's key of the same name: %v", err)
	}
}

// bindOrZero binds name and kc, or returns the zero Bound, which every store refuses with
// kms.ErrInvalidName, just as it refused a bad name before names were bound.
func bindOrZero(name string, kc kms.Context) kms.Bound {
	b, _ := kms.Bind(name, kc)
	return b
}
