package postgres

import (
	"errors"
	"strings"
	"time"

	"github.com/medicus-cloud/trust/internal/keyfile"
)

// Config is the configuration file form of Options, for trustd's "audit" section:
//
//	audit:
//	  backend: postgres
//	  postgres:
//	    dsn_file: /etc/medicus/audit-dsn      # 0600: the connection string may hold a password
//	    key_file: /etc/medicus/audit-note.key # 0600: the same note key on every replica
//	    max_batch: 1024                        # optional
//	    timeout: 10s                           # optional
//	    max_conns: 8                           # optional
type Config struct {
	DSNFile  string        `yaml:"dsn_file" json:"dsn_file"`
	KeyFile  string        `yaml:"key_file" json:"key_file"`
	MaxBatch int           `yaml:"max_batch,omitempty" json:"max_batch,omitempty"`
	Timeout  time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	MaxConns int32         `yaml:"max_conns,omitempty" json:"max_conns,omitempty"`
}

// Options reads the files c names and returns the Options for Open (Now left to its default).
func (c Config) Options() (Options, error) {
	switch {
	case c.DSNFile == "":
		return Options{}, errors.New("postgres config: dsn_file is required")
	case c.KeyFile == "":
		return Options{}, errors.New("postgres config: key_file is required")
	case c.MaxBatch < 0 || c.Timeout < 0 || c.MaxConns < 0:
		return Options{}, errors.New("postgres config: max_batch, timeout and max_conns must not be negative")
	}
	dsn, err := readPrivate(c.DSNFile, "connection string")
	if err != nil {
		return Options{}, err
	}
	key, err := ReadKeyFile(c.KeyFile)
	if err != nil {
		return Options{}, err
	}
	return Options{DSN: dsn, Key: key, MaxBatch: c.MaxBatch, Timeout: c.Timeout, MaxConns: c.MaxConns}, nil
}

// readPrivate reads a small secret file that others may not access (see internal/keyfile).
func readPrivate(path, what string) (string, error) {
	b, err := keyfile.Read(path, "postgres: "+what)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
