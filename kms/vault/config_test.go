package vault

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/medicus-cloud/trust/kms"
)

func validConfig() Config {
	return Config{
		Address: "https://vault.internal:8200",
		Auth:    Auth{Method: AuthAppRole, AppRole: AppRoleAuth{RoleID: "r", SecretIDFile: "/run/secrets/sid"}},
		Tenants: map[string]Mapping{"uk-freiburg": {}, "uk-koeln": {}},
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(c *Config)
		field string // "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"loopback http", func(c *Config) { c.Address = "http://127.0.0.1:8200" }, ""},
		{"localhost http", func(c *Config) { c.Address = "http://localhost:8200" }, ""},
		{"global only", func(c *Config) { c.Tenants = nil; c.Global = &Mapping{} }, ""},
		{"token", func(c *Config) { c.Auth = Auth{Method: AuthToken, TokenFile: "/t"} }, ""},
		{"kubernetes", func(c *Config) { c.Auth = Auth{Method: AuthKubernetes, Kubernetes: KubernetesAuth{Role: "trustd"}} }, ""},
		{"no address", func(c *Config) { c.Address = "" }, "address: required"},
		{"remote http", func(c *Config) { c.Address = "http://vault.internal:8200" }, "address:"},
		{"address with path", func(c *Config) { c.Address = "https://vault/v1/sys" }, "address:"},
		{"address with user", func(c *Config) { c.Address = "https://u:p@vault" }, "address:"},
		{"bad namespace", func(c *Config) { c.Namespace = "../x" }, "namespace:"},
		{"half client cert", func(c *Config) { c.TLS.CertFile = "/c" }, "tls:"},
		{"negative timeout", func(c *Config) { c.Timeout = -1 }, "timeout:"},
		{"too many attempts", func(c *Config) { c.Retry.Attempts = 11 }, "retry.attempts:"},
		{"backoff order", func(c *Config) { c.Retry = Retry{MinBackoff: Duration(time.Second), MaxBackoff: 1} }, "retry:"},
		{"no method", func(c *Config) { c.Auth.Method = "" }, "auth.method: required"},
		{"unknown method", func(c *Config) { c.Auth.Method = "userpass" }, "auth.method:"},
		{"token without file", func(c *Config) { c.Auth = Auth{Method: AuthToken} }, "auth.token_file: required"},
		{"approle two role ids", func(c *Config) { c.Auth.AppRole.RoleIDFile = "/r" }, "auth.approle:"},
		{"approle no secret", func(c *Config) { c.Auth.AppRole.SecretIDFile = "" }, "auth.approle.secret_id_file:"},
		{"approle and token", func(c *Config) { c.Auth.TokenFile = "/t" }, "auth.token_file: set, but"},
		{"kubernetes no role", func(c *Config) { c.Auth = Auth{Method: AuthKubernetes} }, "auth.kubernetes.role:"},
		{"kubernetes role path", func(c *Config) {
			c.Auth = Auth{Method: AuthKubernetes, Kubernetes: KubernetesAuth{Role: "a/../b"}}
		}, "auth.kubernetes.role:"},
		{"no mappings", func(c *Config) { c.Tenants = nil }, "tenants:"},
		{"bad tenant", func(c *Config) { c.Tenants["a/b"] = Mapping{} }, "tenants.a/b:"},
		{"upper tenant", func(c *Config) { c.Tenants["UK"] = Mapping{} }, "tenants.UK:"},
		{"sys mount", func(c *Config) { c.Tenants["x"] = Mapping{TransitMount: "sys"} }, "tenants.x.transit_mount:"},
		{"sys nested", func(c *Config) { c.Tenants["x"] = Mapping{KVMount: "sys/raw"} }, "tenants.x.kv_mount:"},
		{"auth mount", func(c *Config) { c.Tenants["x"] = Mapping{TransitMount: "auth/token"} }, "tenants.x.transit_mount:"},
		{"dotdot mount", func(c *Config) { c.Tenants["x"] = Mapping{TransitMount: "a/../sys"} }, "tenants.x.transit_mount:"},
		{"encoded mount", func(c *Config) { c.Tenants["x"] = Mapping{TransitMount: "a%2fb"} }, "tenants.x.transit_mount:"},
		{"dotdot prefix", func(c *Config) { c.Tenants["x"] = Mapping{KVPrefix: "../other"} }, "tenants.x.kv_prefix:"},
		{"shared transit", func(c *Config) { c.Tenants["uk-koeln"] = Mapping{TransitMount: "transit-uk-freiburg"} }, "also used by"},
		{"shared kv prefix", func(c *Config) {
			c.Tenants["uk-koeln"] = Mapping{KVMount: "kv", KVPrefix: "a"}
			c.Tenants["uk-freiburg"] = Mapping{KVMount: "kv", KVPrefix: "a"}
		}, "overlaps"},
		{"nested kv prefix", func(c *Config) {
			c.Tenants["uk-koeln"] = Mapping{KVMount: "kv", KVPrefix: "a"}
			c.Tenants["uk-freiburg"] = Mapping{KVMount: "kv", KVPrefix: "a/b"}
		}, "overlaps"},
		{"global shares tenant mount", func(c *Config) { c.Global = &Mapping{TransitMount: "transit-uk-koeln"} }, "global.transit_mount:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			c.Tenants = map[string]Mapping{"uk-freiburg": {}, "uk-koeln": {}}
			tc.edit(&c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Validate() = %v, want a ConfigError naming %q", err, tc.field)
			}
		})
	}
}

func TestConfigJSON(t *testing.T) {
	var c Config
	src := `{"address":"https://v:8200","timeout":"1.5s","retry":{"attempts":2,"min_backoff":"10ms","max_backoff":"1s"},
	"auth":{"method":"kubernetes","kubernetes":{"role":"trustd"}},"tenants":{"uk-freiburg":{}}}`
	dec := json.NewDecoder(strings.NewReader(src))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.Timeout) != 1500*time.Millisecond || time.Duration(c.Retry.MinBackoff) != 10*time.Millisecond {
		t.Fatalf("durations: %v %v", c.Timeout, c.Retry.MinBackoff)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(`{"timeout":"soon"}`), &c); err == nil {
		t.Fatal("bad duration accepted")
	}
}

func TestRouter(t *testing.T) {
	c := validConfig()
	c.Tenants["uk-koeln"] = Mapping{TransitMount: "health/transit-koeln", KVMount: "health/kv", KVPrefix: "apps/trustd"}
	c.Global = &Mapping{}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	r := newRouter(&c)
	for _, tc := range []struct {
		name, transit, kv string
		err               error // for both
		transitErr        error // for the transit key only
	}{
		{name: "uk-freiburg/records", transit: "transit-uk-freiburg/datakey/plaintext/records", kv: "kv-uk-freiburg/data/trustd/records"},
		{name: "uk-freiburg/api-token", transit: "transit-uk-freiburg/datakey/plaintext/api-token", kv: "kv-uk-freiburg/data/trustd/api-token"},
		{name: "uk-koeln/imaging.v2", transit: "health/transit-koeln/datakey/plaintext/imaging.v2", kv: "health/kv/data/apps/trustd/imaging.v2"},
		{name: "signing-root", transit: "transit-global/datakey/plaintext/signing-root", kv: "kv-global/data/trustd/signing-root"},
		{name: "uk-freiburg/db/password", kv: "kv-uk-freiburg/data/trustd/db/password", transitErr: kms.ErrInvalidName},
		{name: "uk-freiburg/key-", kv: "kv-uk-freiburg/data/trustd/key-", transitErr: kms.ErrInvalidName},
		{name: "other/records", err: kms.ErrNotFound},
		{name: "sys/policy", err: kms.ErrNotFound},
		{name: "transit-uk-freiburg/records", err: kms.ErrNotFound},
		{name: "../sys", err: kms.ErrInvalidName},
		{name: "uk-freiburg/../sys", err: kms.ErrInvalidName},
		{name: "uk-freiburg/..%2fsys", err: kms.ErrInvalidName},
		{name: "uk-freiburg%2f..%2fsys", err: kms.ErrInvalidName},
		{name: "uk-freiburg/%2e%2e", err: kms.ErrInvalidName},
		{name: "uk-freiburg//x", err: kms.ErrInvalidName},
		{name: "uk-freiburg/x?y", err: kms.ErrInvalidName},
		{name: "uk-freiburg/x#y", err: kms.ErrInvalidName},
		{name: "uk-freiburg/x\\..\\y", err: kms.ErrInvalidName},
		{name: "/uk-freiburg/x", err: kms.ErrInvalidName},
		{name: "", err: kms.ErrInvalidName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, err := r.transitPath(tc.name, "datakey", "plaintext")
			want := tc.err
			if want == nil {
				want = tc.transitErr
			}
			if want != nil {
				if !errors.Is(err, want) {
					t.Errorf("transitPath = %q, %v; want %v", tp, err, want)
				}
			} else if err != nil || tp != tc.transit {
				t.Errorf("transitPath = %q, %v; want %q", tp, err, tc.transit)
			}
			kp, err := r.kvPath(tc.name, "data")
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Errorf("kvPath = %q, %v; want %v", kp, err, tc.err)
				}
			} else if err != nil || kp != tc.kv {
				t.Errorf("kvPath = %q, %v; want %q", kp, err, tc.kv)
			}
		})
	}
}

func TestAPIPath(t *testing.T) {
	for _, bad := range []string{"..", ".", "", "a%2fb", "a b", "a?b", "a#b", "ä", "a\\b", "a;b", "a:b", "a@b"} {
		if p, err := apiPath("mount", bad); err == nil {
			t.Errorf("apiPath(mount, %q) = %q", bad, p)
		}
	}
	if p, err := apiPath("a/b", "c.d_e-f"); err != nil || p != "a/b/c.d_e-f" {
		t.Errorf("apiPath = %q, %v", p, err)
	}
}

func TestSampleConfig(t *testing.T) {
	b, err := os.ReadFile("testdata/trustd-vault.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.Retry.MaxBackoff) != 2*time.Second || c.Tenants["uk-koeln"].KVPrefix != "apps/trustd" || c.Global == nil {
		t.Fatalf("decoded %+v", c)
	}
	r := newRouter(&c)
	if p, err := r.transitPath("uk-freiburg/records", "keys"); err != nil || p != "transit-uk-freiburg/keys/records" {
		t.Fatalf("mapping: %q %v", p, err)
	}
	if p, err := r.kvPath("uk-freiburg/api-token", "data"); err != nil || p != "kv-uk-freiburg/data/trustd/api-token" {
		t.Fatalf("mapping: %q %v", p, err)
	}
	// Round trip through YAML keeps durations readable.
	out, err := yaml.Marshal(c)
	if err != nil || !strings.Contains(string(out), "timeout: 5s") {
		t.Fatalf("marshal: %v\n%s", err, out)
	}
}
