// Package daemon wires trustd together from a typed, validated configuration: key files in the
// data directory, the key store, the policy bundle, the audit log, the verifiers and the gRPC
// listener. cmd/trustd only parses flags and calls Run.
package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is trustd's configuration. The YAML file and the flags fill the same struct; unknown
// keys in the file are errors.
type Config struct {
	// Listen is the gRPC address. Default 127.0.0.1:7443.
	Listen string `yaml:"listen"`
	// HTTPListen serves read-only HTTP endpoints (audit log tiles, token key set). Empty: off.
	HTTPListen string `yaml:"http_listen"`
	// DataDir holds all local state: keyring, nonce key, token keys, audit log.
	DataDir string `yaml:"data_dir"`
	// Policy is a policy file or directory.
	Policy string `yaml:"policy"`
	// Dev accepts the insecure simulated TEE and plaintext gRPC. Never in production.
	Dev bool `yaml:"dev"`
	// MasterKeyFile holds the local keyring's master key (32 bytes, raw or hex). Keep it outside
	// DataDir. The environment variable MEDICUS_MASTER_KEY (hex) is the alternative.
	MasterKeyFile string `yaml:"master_key_file"`
	// NonceKeyFiles are shared by replicas; the first issues nonces, all are accepted. Empty:
	// a key in DataDir.
	NonceKeyFiles []string `yaml:"nonce_key_files"`
	// TokenLifetime of result tokens. Default 5m.
	TokenLifetime time.Duration `yaml:"token_lifetime"`
	// KMS selects the key store.
	KMS KMSConfig `yaml:"kms"`
}

// KMSConfig selects and configures the key store.
type KMSConfig struct {
	// Backend is "local" (default) or "vault".
	Backend string `yaml:"backend"`
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
	if c.KMS.Backend == "" {
		c.KMS.Backend = "local"
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
	switch c.KMS.Backend {
	case "local":
	default:
		errs = append(errs, fmt.Errorf("kms.backend: %q, want local", c.KMS.Backend))
	}
	return errors.Join(errs...)
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
	return &c, nil
}
