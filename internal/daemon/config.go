// Package daemon wires trustd together from a typed, validated configuration: key files in the
// data directory, the key store, the policy bundle, the audit log, the verifiers and the gRPC
// listener. cmd/trustd only parses flags and calls Run.
//
// It is the composition root, the one package that imports every other; it stays under
// internal/ rather than cmd/trustd/internal/ because deploy/ tests the shipped configurations
// and unit files through ParseCommandLine and LoadConfig. Leaf helpers do not belong here:
// trustctl and the libraries must never need to import it.
package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/medicus-cloud/trust/audit/tlog"
	"github.com/medicus-cloud/trust/challenge"
	"github.com/medicus-cloud/trust/internal/loopback"
	"github.com/medicus-cloud/trust/kms/vault"
)

// Config is trustd's configuration. The YAML file and the flags fill the same struct; unknown
// keys in the file are errors.
type Config struct {
	// Listen is the gRPC address. Default 127.0.0.1:7443.
	Listen string `yaml:"listen"`
	// HTTPListen serves read-only HTTP endpoints (audit log tiles, token key set; and metrics
	// unless MetricsListen is set). HTTPS when tls is configured. Empty: off.
	HTTPListen string `yaml:"http_listen"`
	// MetricsListen serves /metrics on its own address (HTTPS when tls is configured).
	MetricsListen string `yaml:"metrics_listen"`
	// ShutdownGrace is how long in-flight requests may take after SIGTERM. Default 30s.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// DataDir holds all local state: keyring, nonce key, token keys, audit log.
	DataDir string `yaml:"data_dir"`
	// Policy is the policy bundle directory (or, in dev mode, a single file).
	Policy string `yaml:"policy"`
	// ShadowPolicy, when set, is a candidate bundle directory (signed like Policy outside dev
	// mode) evaluated beside the active one: its would-be decisions are recorded, never enforced.
	ShadowPolicy string `yaml:"shadow_policy"`
	// PolicyTrustKeys is a PEM file of the security team's public keys. A bundle loads only when
	// PolicyThreshold of them signed it (zero: all). Required outside dev mode.
	PolicyTrustKeys string `yaml:"policy_trust_keys"`
	PolicyThreshold int    `yaml:"policy_threshold"`
	// PolicyReloadInterval is how often the bundle directory is checked for a new bundle.
	// Default 10s; a failed reload keeps the active bundle and is logged.
	PolicyReloadInterval time.Duration `yaml:"policy_reload_interval"`
	// TokenKeyDir holds the token signing keys (current and recent); replicas share it.
	// Default DataDir/token-keys.
	TokenKeyDir string `yaml:"token_key_dir"`
	// Dev accepts the insecure simulated TEE and plaintext gRPC. Never in production: it is
	// refused unless every listener is on a loopback address.
	Dev bool `yaml:"dev"`
	// MasterKeyFile holds the local keyring's master key (32 bytes, raw or hex). Keep it outside
	// DataDir. The environment variable MEDICUS_MASTER_KEY (hex) is the alternative.
	MasterKeyFile string `yaml:"master_key_file"`
	// NonceKeyFiles are shared by replicas; the first issues nonces, all are accepted. Empty:
	// a key in DataDir.
	NonceKeyFiles []string `yaml:"nonce_key_files"`
	// NonceClockSkew is how far another replica's clock may run ahead of this one's when it
	// checks that replica's nonces. Default 30s; below the nonces' 5-minute lifetime.
	NonceClockSkew time.Duration `yaml:"nonce_clock_skew"`
	// TokenLifetime of result tokens. Default 5m.
	TokenLifetime time.Duration `yaml:"token_lifetime"`
	// TokenIssuer is the "iss" of result tokens: the deployment's URL (for example
	// https://trust.medicus.cloud). trustd accepts only tokens that name it. Default "trustd".
	TokenIssuer string `yaml:"token_issuer"`
	// TokenAudience, if set, is the "aud" of result tokens, and trustd accepts only tokens that
	// name it.
	TokenAudience string `yaml:"token_audience"`
	// TLS secures every listener; required outside dev mode.
	TLS TLSConfig `yaml:"tls"`
	// Limits protect trustd from floods and oversized messages.
	Limits LimitsConfig `yaml:"limits"`
	// Audit selects the audit log.
	Audit AuditConfig `yaml:"audit"`
	// KMS selects the key store.
	KMS KMSConfig `yaml:"kms"`
	// Verifiers configure evidence verification: one section per TEE scheme (attest/schemes),
	// each scheme on only when its section is present. See verifiers.go.
	Verifiers Verifiers `yaml:"verifiers"`
	// Revocations tunes how revocations reach this replica (see revocations.go).
	Revocations RevocationsConfig `yaml:"revocations"`
	// CollateralBundle imports a signed collateral bundle for air-gapped sites (collateral.go).
	CollateralBundle CollateralBundleConfig `yaml:"collateral_bundle"`
}

// TLSConfig is the server certificate (reloaded when the files change, TLS 1.3 only) and, for
// the admin API, the CA that issues administrators' certificates. Roles come from the
// certificate's URI SAN spiffe://<trust_domain>/role/<security-team|operator|auditor>.
type TLSConfig struct {
	CertFile      string `yaml:"cert_file"`
	KeyFile       string `yaml:"key_file"`
	ClientCAFile  string `yaml:"client_ca_file"`
	ClientCRLFile string `yaml:"client_crl_file"`
	TrustDomain   string `yaml:"trust_domain"`
}

// LimitsConfig bounds what one peer and all peers together may ask; excess is answered with
// ResourceExhausted at once rather than queued. Zero values take the limits package defaults.
type LimitsConfig struct {
	// Rate is requests per second per peer (IPv6 peers are charged per /64); Burst the bucket.
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
	// MaxConcurrent caps requests in flight across all peers.
	MaxConcurrent   int           `yaml:"max_concurrent"`
	MaxRecvMsgBytes int           `yaml:"max_recv_msg_bytes"`
	MaxSendMsgBytes int           `yaml:"max_send_msg_bytes"`
	RequestTimeout  time.Duration `yaml:"request_timeout"`
}

// AuditConfig selects the audit log: "local" (tiles in DataDir/audit, one trustd) or
// "postgres" (one log that every replica appends to, with the same tiles, checkpoints and
// auditor tools).
type AuditConfig struct {
	Backend string `yaml:"backend"`
	// DSNFile holds the PostgreSQL connection string; MEDICUS_AUDIT_DSN is the alternative.
	DSNFile string `yaml:"dsn_file"`
	// KeyFile holds the note signing key that every replica shares (trustctl can make one).
	KeyFile string `yaml:"key_file"`
	// ContextKeyFile holds the deployment's audit context key (64 hex characters, `trustctl
	// audit context-keygen`), shared by every replica: records carry context digests keyed
	// with it, per tenant. Required outside dev mode, which keeps one in DataDir.
	ContextKeyFile string `yaml:"context_key_file"`
	// Origin names this deployment's log in its checkpoints (and is the note key's name), so
	// that a witness following two deployments can tell their logs apart: a schema-less URL
	// such as trust.medicus.example/audit, usually the public URL's host and path. Required
	// outside dev mode, and never the shared default.
	Origin string `yaml:"origin"`
}

// KMSConfig selects and configures the key stores. The single-store form is backend (and
// vault); it becomes one store named "default" that serves every tenant. The routed form names
// stores and maps tenants (the first segment of key and secret names) to them:
//
//	kms:
//	  stores:
//	    platform: {backend: vault, vault: {...}}
//	    ukf-hsm:  {backend: pkcs11, pkcs11: {module: ..., token: ..., pin_file: ...}}
//	  routes: {uk-freiburg: ukf-hsm}
//	  default: platform
type KMSConfig struct {
	// Backend is "local" (default) or "vault": the single-store form.
	Backend string        `yaml:"backend"`
	Vault   *vault.Config `yaml:"vault"`
	// Stores by name (label "store" of the key store metrics); backends: local, vault, pkcs11.
	Stores map[string]StoreConfig `yaml:"stores"`
	// Routes maps a tenant to its store.
	Routes map[string]string `yaml:"routes"`
	// Default serves tenants without a route and one-segment names. Empty: those are not found.
	Default string `yaml:"default"`
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:7443"
	}
	if c.DataDir == "" {
		c.DataDir = "trustd-data"
	}
	if c.TokenLifetime == 0 {
		c.TokenLifetime = 5 * time.Minute
	}
	if c.KMS.Backend == "" && len(c.KMS.Stores) == 0 {
		c.KMS.Backend = "local"
	}
	if c.Audit.Backend == "" {
		c.Audit.Backend = "local"
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 30 * time.Second
	}
	if c.PolicyReloadInterval == 0 {
		c.PolicyReloadInterval = 10 * time.Second
	}
	if c.TokenKeyDir == "" {
		c.TokenKeyDir = filepath.Join(c.DataDir, "token-keys")
	}
}

// Validate checks the configuration as a whole.
func (c *Config) Validate() error {
	var errs []error
	if c.Policy == "" {
		errs = append(errs, errors.New("policy: a policy file or directory is required"))
	}
	if c.TokenLifetime < 0 || c.TokenLifetime > time.Hour {
		errs = append(errs, fmt.Errorf("token_lifetime: %v outside (0, 1h]", c.TokenLifetime))
	}
	if !c.Dev && (c.TLS.CertFile == "" || c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls: cert_file and key_file are required outside dev mode: trustd serves TLS 1.3 only"))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls: cert_file and key_file go together"))
	}
	if c.TLS.ClientCAFile != "" && c.TLS.CertFile == "" {
		errs = append(errs, errors.New("tls: client_ca_file needs cert_file and key_file"))
	}
	if !c.Dev && c.TLS.ClientCAFile != "" && c.TLS.ClientCRLFile == "" {
		errs = append(errs, errors.New("tls.client_crl_file: required with client_ca_file outside dev mode: without a CRL an administrator's certificate could not be revoked"))
	}
	if !c.Dev && c.PolicyTrustKeys == "" {
		errs = append(errs, errors.New("policy_trust_keys: required outside dev mode: trustd loads only signed policy bundles"))
	}
	if c.NonceClockSkew < 0 || c.NonceClockSkew >= challenge.MaxLifetime {
		errs = append(errs, fmt.Errorf("nonce_clock_skew: %v outside [0, %v)", c.NonceClockSkew, challenge.MaxLifetime))
	}
	if c.PolicyThreshold < 0 {
		errs = append(errs, fmt.Errorf("policy_threshold: %d is negative", c.PolicyThreshold))
	}
	if !c.Dev && c.Audit.ContextKeyFile == "" {
		errs = append(errs, errors.New("audit.context_key_file: required outside dev mode: it keys the context digests of audit records"))
	}
	errs = append(errs, c.validateDevAndOrigin()...)
	errs = append(errs, c.Verifiers.validate(c.Dev)...)
	switch c.Audit.Backend {
	case "local":
		if c.Audit.DSNFile != "" || c.Audit.KeyFile != "" {
			errs = append(errs, errors.New("audit: dsn_file and key_file are for backend postgres"))
		}
	case "postgres":
		if c.Audit.KeyFile == "" {
			errs = append(errs, errors.New("audit.key_file: required for backend postgres: every replica signs with the same note key"))
		}
	default:
		errs = append(errs, fmt.Errorf("audit.backend: %q, want local or postgres", c.Audit.Backend))
	}
	errs = append(errs, c.KMS.validate()...)
	switch c.KMS.Backend {
	case "":
		// the routed form (kms.stores), checked above
	case "local":
		if c.KMS.Vault != nil {
			errs = append(errs, errors.New("kms.vault: set, but kms.backend is local"))
		}
	case "vault":
		if c.KMS.Vault == nil {
			errs = append(errs, errors.New("kms.vault: required when kms.backend is vault"))
		} else if err := c.KMS.Vault.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("kms.vault: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("kms.backend: %q, want local or vault", c.KMS.Backend))
	}
	return errors.Join(errs...)
}

// validateDevAndOrigin checks the settings that tell a deployment from a developer's trustd.
// Dev mode accepts evidence anyone can forge, so it serves only on loopback addresses: a
// configuration that listens on the network is a production one and refuses dev mode, however
// dev mode was asked for (-dev, --dev, dev: true). Outside dev mode the audit log needs the
// deployment's own origin.
func (c *Config) validateDevAndOrigin() []error {
	var errs []error
	if c.Dev {
		for _, l := range []struct{ key, addr string }{{"listen", c.Listen}, {"http_listen", c.HTTPListen}, {"metrics_listen", c.MetricsListen}} {
			if l.addr != "" && !loopbackAddr(l.addr) {
				errs = append(errs, fmt.Errorf("dev: refused with %s %q: dev mode accepts forged evidence and serves only on loopback addresses; this is a production configuration", l.key, l.addr))
			}
		}
	}
	o := c.Audit.Origin
	switch {
	case o == "" && !c.Dev:
		errs = append(errs, errors.New("audit.origin: required outside dev mode: each deployment's log needs its own name, such as trust.medicus.example/audit"))
	case o == tlog.DefaultOrigin && !c.Dev:
		errs = append(errs, fmt.Errorf("audit.origin: %q is the default that every deployment shares; name this deployment's log", o))
	case o != "" && (strings.Contains(o, "://") || strings.ContainsAny(o, "+") || strings.IndexFunc(o, unicode.IsSpace) >= 0 || !utf8.ValidString(o)):
		errs = append(errs, fmt.Errorf("audit.origin: %q: want a schema-less URL without spaces or '+', such as trust.medicus.example/audit", o))
	}
	return errs
}

// loopbackAddr reports whether a listen address binds only to the loopback interface.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && loopback.Host(host)
}

// LoadConfig reads a YAML configuration file strictly.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// Settings in a further document would be ignored without a word.
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: a second YAML document after the first: the configuration is one document", path)
	}
	return &c, nil
}
