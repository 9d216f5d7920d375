package vault

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/medicus-cloud/trust/internal/loopback"
	"github.com/medicus-cloud/trust/kms"
)

// Config is the Vault section of trustd's configuration. Its zero value is not usable: Address,
// Auth.Method and at least one mapping are required. Validate reports every problem by field.
type Config struct {
	// Address is the Vault API address, for example "https://vault.internal:8200". It must use
	// https, except for loopback hosts (a local Vault Agent or a test server).
	Address string `yaml:"address" json:"address"`
	// Namespace is the Vault Enterprise (or OpenBao) namespace for every call, for example
	// "health/prod". Empty means the root namespace.
	Namespace string `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	TLS       TLS    `yaml:"tls,omitempty" json:"tls,omitempty"`
	Auth      Auth   `yaml:"auth" json:"auth"`
	// Timeout bounds each HTTP attempt. Default 5s.
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	Retry   Retry    `yaml:"retry,omitempty" json:"retry,omitempty"`
	// Tenants maps the first segment of a name onto Vault mounts: with the defaults, name
	// "uk-freiburg/records" is key "records" of transit mount "transit-uk-freiburg", and secret
	// "uk-freiburg/api-token" is path "trustd/api-token" of KV v2 mount "kv-uk-freiburg".
	// A tenant that is not listed has no keys.
	Tenants map[string]Mapping `yaml:"tenants" json:"tenants"`
	// Global, when set, holds the names of a single segment ("signing-root"). When nil such
	// names are not found. It must not share a mount (or KV prefix) with any tenant.
	Global *Mapping `yaml:"global,omitempty" json:"global,omitempty"`
}

// Mapping places one tenant's keys and secrets in Vault. Empty fields take the defaults named.
type Mapping struct {
	// TransitMount holds the tenant's transit keys. Default "transit-<tenant>" ("transit-global"
	// for Global).
	TransitMount string `yaml:"transit_mount,omitempty" json:"transit_mount,omitempty"`
	// KVMount is the tenant's KV version 2 mount. Default "kv-<tenant>" ("kv-global").
	KVMount string `yaml:"kv_mount,omitempty" json:"kv_mount,omitempty"`
	// KVPrefix is the folder inside KVMount that trustd reads. Default "trustd".
	KVPrefix string `yaml:"kv_prefix,omitempty" json:"kv_prefix,omitempty"`
}

// TLS configures the connection to Vault. With no CA configured the system roots are used.
type TLS struct {
	// CAFile is a PEM bundle of the CAs that may sign Vault's certificate. It replaces the
	// system roots.
	CAFile string `yaml:"ca_file,omitempty" json:"ca_file,omitempty"`
	// ServerName overrides the name checked in Vault's certificate.
	ServerName string `yaml:"server_name,omitempty" json:"server_name,omitempty"`
	// CertFile and KeyFile are a client certificate, for Vault listeners that require one.
	CertFile string `yaml:"cert_file,omitempty" json:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty" json:"key_file,omitempty"`
}

// Auth methods.
const (
	AuthToken      = "token"
	AuthAppRole    = "approle"
	AuthKubernetes = "kubernetes"
)

// Auth says how trustd logs in. Credentials are read from files at every login, so rotated
// files (a new secret ID, a refreshed service-account token) are picked up on the next login.
type Auth struct {
	// Method is "token", "approle" or "kubernetes".
	Method string `yaml:"method" json:"method"`
	// TokenFile holds a Vault token (method token). The token is renewed while renewable; when
	// it stops working the file is read again.
	TokenFile  string         `yaml:"token_file,omitempty" json:"token_file,omitempty"`
	AppRole    AppRoleAuth    `yaml:"approle,omitempty" json:"approle,omitempty"`
	Kubernetes KubernetesAuth `yaml:"kubernetes,omitempty" json:"kubernetes,omitempty"`
}

// AppRoleAuth logs in with a role ID and a secret ID.
type AppRoleAuth struct {
	// Mount of the AppRole auth method. Default "approle".
	Mount string `yaml:"mount,omitempty" json:"mount,omitempty"`
	// RoleID is not secret; RoleIDFile may be used instead.
	RoleID       string `yaml:"role_id,omitempty" json:"role_id,omitempty"`
	RoleIDFile   string `yaml:"role_id_file,omitempty" json:"role_id_file,omitempty"`
	SecretIDFile string `yaml:"secret_id_file" json:"secret_id_file"`
}

// KubernetesAuth logs in with the pod's service-account token.
type KubernetesAuth struct {
	// Mount of the Kubernetes auth method. Default "kubernetes".
	Mount string `yaml:"mount,omitempty" json:"mount,omitempty"`
	// Role is the Vault role bound to trustd's service account.
	Role string `yaml:"role" json:"role"`
	// JWTFile defaults to the projected service-account token of the pod.
	JWTFile string `yaml:"jwt_file,omitempty" json:"jwt_file,omitempty"`
}

// DefaultKubernetesJWTFile is where Kubernetes mounts a pod's service-account token.
const DefaultKubernetesJWTFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// Retry bounds retries of connection errors and 5xx answers. 4xx answers are never retried.
type Retry struct {
	// Attempts in all, including the first. Default 3; 1 disables retries.
	Attempts int `yaml:"attempts,omitempty" json:"attempts,omitempty"`
	// MinBackoff before the second attempt, doubled each time up to MaxBackoff, with jitter.
	// Defaults 100ms and 2s.
	MinBackoff Duration `yaml:"min_backoff,omitempty" json:"min_backoff,omitempty"`
	MaxBackoff Duration `yaml:"max_backoff,omitempty" json:"max_backoff,omitempty"`
}

// Duration is a time.Duration written as "5s" in YAML and JSON.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Defaults.
const (
	DefaultTimeout    = 5 * time.Second
	DefaultAttempts   = 3
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 2 * time.Second
	DefaultKVPrefix   = "trustd"
)

// ConfigError lists every invalid field of a Config.
type ConfigError struct {
	Problems []string // "field: what is wrong"
}

func (e *ConfigError) Error() string {
	return "vault config: " + strings.Join(e.Problems, "; ")
}

// mountRE is a Vault mount path we accept: segments of letters, digits, '-' and '_'. Nothing
// that a URL would need to escape, no dots, so no "." or ".." segment.
var mountRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*(/[A-Za-z0-9][A-Za-z0-9_-]*)*$`)

// segmentRE is every character an API path segment may hold: URL-unreserved, no '%'.
var segmentRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// reservedMounts are Vault's own paths: a mapping may never point into them.
var reservedMounts = map[string]bool{"sys": true, "auth": true, "identity": true, "cubbyhole": true}

// Validate checks the configuration and returns a *ConfigError naming each bad field.
func (c *Config) Validate() error {
	var p []string
	bad := func(field, format string, args ...any) {
		p = append(p, field+": "+fmt.Sprintf(format, args...))
	}
	if c.Address == "" {
		bad("address", "required")
	} else if u, err := url.Parse(c.Address); err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		bad("address", "%q must be scheme://host[:port]", c.Address)
	} else if u.Scheme != "https" && !(u.Scheme == "http" && loopback.Host(u.Hostname())) {
		bad("address", "%q must use https (plain http only to a loopback host)", c.Address)
	}
	if c.Namespace != "" && !mountRE.MatchString(strings.TrimSuffix(c.Namespace, "/")) {
		bad("namespace", "%q must be segments of [A-Za-z0-9_-] separated by '/'", c.Namespace)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "cert_file and key_file go together")
	}
	if c.Timeout < 0 {
		bad("timeout", "negative")
	}
	if c.Retry.Attempts < 0 || c.Retry.Attempts > 10 {
		bad("retry.attempts", "%d outside 0..10", c.Retry.Attempts)
	}
	if c.Retry.MinBackoff < 0 || c.Retry.MaxBackoff < 0 {
		bad("retry", "negative backoff")
	}
	if c.Retry.MinBackoff > 0 && c.Retry.MaxBackoff > 0 && c.Retry.MinBackoff > c.Retry.MaxBackoff {
		bad("retry", "min_backoff above max_backoff")
	}
	p = append(p, c.Auth.problems()...)

	if len(c.Tenants) == 0 && c.Global == nil {
		bad("tenants", "no tenant and no global mapping: nothing could be released")
	}
	transit := map[string]string{}
	type kvPlace struct{ field, mount, prefix string }
	var kvs []kvPlace
	check := func(field string, m Mapping) {
		if !mountRE.MatchString(m.TransitMount) || reservedMounts[strings.SplitN(m.TransitMount, "/", 2)[0]] {
			bad(field+".transit_mount", "%q is not an allowed mount path", m.TransitMount)
		} else if other, dup := transit[m.TransitMount]; dup {
			bad(field+".transit_mount", "%q is also used by %s", m.TransitMount, other)
		} else {
			transit[m.TransitMount] = field
		}
		if !mountRE.MatchString(m.KVMount) || reservedMounts[strings.SplitN(m.KVMount, "/", 2)[0]] {
			bad(field+".kv_mount", "%q is not an allowed mount path", m.KVMount)
		}
		if !mountRE.MatchString(m.KVPrefix) {
			bad(field+".kv_prefix", "%q must be segments of [A-Za-z0-9_-] separated by '/'", m.KVPrefix)
		}
		kvs = append(kvs, kvPlace{field, m.KVMount, m.KVPrefix})
	}
	tenants := make([]string, 0, len(c.Tenants))
	for t := range c.Tenants {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	for _, t := range tenants {
		field := "tenants." + t
		if err := kms.CheckName(t); err != nil || strings.Contains(t, "/") {
			bad(field, "tenant must be one name segment of [a-z0-9._-]")
			continue
		}
		check(field, c.Tenants[t].withDefaults(t))
	}
	if c.Global != nil {
		check("global", c.Global.withDefaults("global"))
	}
	// Two mappings must never reach the same secret: same KV mount with one prefix inside the
	// other would let "a/x/y" of one tenant be "b/y" of another.
	for i := range kvs {
		for j := i + 1; j < len(kvs); j++ {
			a, b := kvs[i], kvs[j]
			if a.mount == b.mount && (a.prefix == b.prefix || strings.HasPrefix(a.prefix+"/", b.prefix+"/") || strings.HasPrefix(b.prefix+"/", a.prefix+"/")) {
				bad(b.field+".kv_prefix", "%s/%s overlaps %s (%s/%s)", b.mount, b.prefix, a.field, a.mount, a.prefix)
			}
		}
	}
	if len(p) > 0 {
		return &ConfigError{Problems: p}
	}
	return nil
}

func (a *Auth) problems() []string {
	var p []string
	bad := func(field, format string, args ...any) {
		p = append(p, field+": "+fmt.Sprintf(format, args...))
	}
	setOther := func(method string) {
		if method != AuthToken && a.TokenFile != "" {
			bad("auth.token_file", "set, but method is %q", a.Method)
		}
		if method != AuthAppRole && a.AppRole != (AppRoleAuth{}) {
			bad("auth.approle", "set, but method is %q", a.Method)
		}
		if method != AuthKubernetes && a.Kubernetes != (KubernetesAuth{}) {
			bad("auth.kubernetes", "set, but method is %q", a.Method)
		}
	}
	switch a.Method {
	case AuthToken:
		if a.TokenFile == "" {
			bad("auth.token_file", "required for method token")
		}
	case AuthAppRole:
		r := a.AppRole
		if (r.RoleID == "") == (r.RoleIDFile == "") {
			bad("auth.approle", "exactly one of role_id and role_id_file")
		}
		if r.SecretIDFile == "" {
			bad("auth.approle.secret_id_file", "required")
		}
		if r.Mount != "" && !mountRE.MatchString(r.Mount) {
			bad("auth.approle.mount", "%q is not a mount path", r.Mount)
		}
	case AuthKubernetes:
		k := a.Kubernetes
		if k.Role == "" {
			bad("auth.kubernetes.role", "required")
		} else if !mountRE.MatchString(k.Role) || strings.Contains(k.Role, "/") {
			bad("auth.kubernetes.role", "%q must be [A-Za-z0-9_-]", k.Role)
		}
		if k.Mount != "" && !mountRE.MatchString(k.Mount) {
			bad("auth.kubernetes.mount", "%q is not a mount path", k.Mount)
		}
	case "":
		bad("auth.method", "required: token, approle or kubernetes")
		return p
	default:
		bad("auth.method", "%q is not token, approle or kubernetes", a.Method)
		return p
	}
	setOther(a.Method)
	return p
}

func (m Mapping) withDefaults(tenant string) Mapping {
	if m.TransitMount == "" {
		m.TransitMount = "transit-" + tenant
	}
	if m.KVMount == "" {
		m.KVMount = "kv-" + tenant
	}
	if m.KVPrefix == "" {
		m.KVPrefix = DefaultKVPrefix
	}
	m.KVPrefix = strings.Trim(m.KVPrefix, "/")
	return m
}

// router maps names onto Vault API paths. Every path it returns lies under a configured mount.
type router struct {
	tenants map[string]Mapping
	global  *Mapping
}

func newRouter(c *Config) *router {
	r := &router{tenants: make(map[string]Mapping, len(c.Tenants))}
	for t, m := range c.Tenants {
		r.tenants[t] = m.withDefaults(t)
	}
	if c.Global != nil {
		g := c.Global.withDefaults("global")
		r.global = &g
	}
	return r
}

var errNoMapping = errors.New("no Vault mapping")

// split checks the name and finds its mapping and the rest of the name.
func (r *router) split(name string) (Mapping, []string, error) {
	if err := kms.CheckName(name); err != nil {
		return Mapping{}, nil, err
	}
	segs := strings.Split(name, "/")
	if len(segs) == 1 {
		if r.global == nil {
			return Mapping{}, nil, fmt.Errorf("%q: %w: %w for names without a tenant", name, kms.ErrNotFound, errNoMapping)
		}
		return *r.global, segs, nil
	}
	m, ok := r.tenants[segs[0]]
	if !ok {
		return Mapping{}, nil, fmt.Errorf("%q: %w: %w for tenant %q", name, kms.ErrNotFound, errNoMapping, segs[0])
	}
	return m, segs[1:], nil
}

// transitKey returns the mount and key name for a transit key. Transit key names are one path
// segment, so a key name is exactly "tenant/key" (or "key" for Global).
func (r *router) transitKey(name string) (mount, key string, err error) {
	m, rest, err := r.split(name)
	if err != nil {
		return "", "", err
	}
	if len(rest) != 1 {
		return "", "", fmt.Errorf("%w: key %q must be <tenant>/<key>, one segment after the tenant", kms.ErrInvalidName, name)
	}
	// Transit's own grammar: the key name must end in a letter, digit or underscore.
	if k := rest[0]; !strings.ContainsAny(k[len(k)-1:], "abcdefghijklmnopqrstuvwxyz0123456789_") {
		return "", "", fmt.Errorf("%w: key %q must end with a letter, digit or '_'", kms.ErrInvalidName, name)
	}
	return m.TransitMount, rest[0], nil
}

// transitPath is "<mount>/<op...>/<key>", checked segment by segment.
func (r *router) transitPath(name string, op ...string) (string, error) {
	mount, key, err := r.transitKey(name)
	if err != nil {
		return "", err
	}
	return apiPath(append(append([]string{mount}, op...), key)...)
}

// kvPath is "<mount>/<op>/<prefix>/<rest of name>", op being "data" or "metadata".
func (r *router) kvPath(name, op string) (string, error) {
	m, rest, err := r.split(name)
	if err != nil {
		return "", err
	}
	return apiPath(append([]string{m.KVMount, op, m.KVPrefix}, rest...)...)
}

// apiPath joins path pieces (each one or more '/'-separated segments) after checking that no
// segment is empty, "." or "..", and that each is unchanged by URL path escaping: nothing that
// reaches the HTTP layer can be decoded into another path.
func apiPath(pieces ...string) (string, error) {
	for _, piece := range pieces {
		for _, seg := range strings.Split(piece, "/") {
			if seg == "." || seg == ".." || !segmentRE.MatchString(seg) || url.PathEscape(seg) != seg {
				return "", fmt.Errorf("%w: path segment %q", kms.ErrInvalidName, seg)
			}
		}
	}
	return strings.Join(pieces, "/"), nil
}
