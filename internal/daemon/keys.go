package daemon

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/internal/atomicfile"
	"github.com/medicus-cloud/trust/internal/keyfile"
	"github.com/medicus-cloud/trust/secret"
)

// MasterKeyEnv is the environment variable that may carry the keyring master key (hex).
const MasterKeyEnv = "MEDICUS_MASTER_KEY"

// MasterKey returns the keyring master key from a file (raw 32 bytes or 64 hex characters) or
// from env, the value of MEDICUS_MASTER_KEY as read by the caller. In dev mode with neither, a
// key file in the data directory is created — convenient, and insecure, since the key then sits
// beside what it protects.
func MasterKey(file, env, dataDir string, dev bool) (*secret.Bytes, string, error) {
	switch {
	case file != "":
		b, err := keyfile.Read(file, "master key")
		if err != nil {
			return nil, "", err
		}
		k, err := decodeKey(b)
		if err != nil {
			return nil, "", fmt.Errorf("master key %s: %w", file, err)
		}
		return k, "file " + file, nil
	case env != "":
		k, err := decodeKey([]byte(env))
		if err != nil {
			return nil, "", fmt.Errorf("master key from %s: %w", MasterKeyEnv, err)
		}
		return k, "environment " + MasterKeyEnv, nil
	case dev:
		path := filepath.Join(dataDir, "dev-master.key")
		b, err := loadOrCreate(path, func() ([]byte, error) {
			k := make([]byte, 32)
			_, err := rand.Read(k)
			return []byte(hex.EncodeToString(k) + "\n"), err
		})
		if err != nil {
			return nil, "", err
		}
		k, err := decodeKey(b)
		return k, "INSECURE dev key " + path, err
	}
	return nil, "", fmt.Errorf("master key: set master_key_file or %s (dev mode alone may keep one in the data directory)", MasterKeyEnv)
}

func decodeKey(b []byte) (*secret.Bytes, error) {
	if len(b) == 32 {
		return secret.New(bytes.Clone(b)), nil
	}
	t := bytes.TrimSpace(b)
	k := make([]byte, hex.DecodedLen(len(t)))
	if _, err := hex.Decode(k, t); err != nil || len(k) != 32 {
		return nil, errors.New("want 32 raw bytes or 64 hex characters")
	}
	return secret.New(k), nil
}

// loadOrCreate reads path (refusing it, as keyfile does, when others may read it), or creates
// it with 0600 from make when missing.
func loadOrCreate(path string, make func() ([]byte, error)) ([]byte, error) {
	if _, err := os.Stat(path); err == nil || !errors.Is(err, os.ErrNotExist) {
		return keyfile.Read(path, "key file")
	}
	b, err := make()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	err = atomicfile.WriteNew(path, b, 0o600)
	if errors.Is(err, os.ErrExist) {
		return keyfile.Read(path, "key file") // another process made it first
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// nonceKeys loads the configured nonce keys, or one in the data directory.
func nonceKeys(files []string, dataDir string) ([][]byte, error) {
	if len(files) == 0 {
		b, err := loadOrCreate(filepath.Join(dataDir, "nonce.key"), func() ([]byte, error) {
			k := make([]byte, 32)
			_, err := rand.Read(k)
			return []byte(hex.EncodeToString(k) + "\n"), err
		})
		if err != nil {
			return nil, fmt.Errorf("nonce key: %w", err)
		}
		files = nil
		k, err := decodeKey(b)
		if err != nil {
			return nil, fmt.Errorf("nonce key: %w", err)
		}
		return [][]byte{k.Reveal()}, nil
	}
	var keys [][]byte
	for _, f := range files {
		b, err := keyfile.Read(f, "nonce key")
		if err != nil {
			return nil, err
		}
		k, err := decodeKey(b)
		if err != nil {
			return nil, fmt.Errorf("nonce key %s: %w", f, err)
		}
		keys = append(keys, k.Reveal())
	}
	return keys, nil
}

// AuditContextKey returns the deployment's audit context key from file or, in dev mode without
// one, from a key file in the data directory that it creates (insecure: beside the log).
func AuditContextKey(file, dataDir string, dev bool) (*audit.ContextKey, string, error) {
	if file != "" {
		b, err := keyfile.Read(file, "audit.context_key_file")
		if err != nil {
			return nil, "", err
		}
		k, err := audit.ParseContextKey(b)
		if err != nil {
			return nil, "", fmt.Errorf("audit.context_key_file %s: %w", file, err)
		}
		return k, "file " + file, nil
	}
	if !dev {
		return nil, "", errors.New("audit.context_key_file: required outside dev mode")
	}
	path := filepath.Join(dataDir, "dev-audit-context.key")
	b, err := loadOrCreate(path, func() ([]byte, error) {
		k := make([]byte, audit.ContextKeySize)
		_, err := rand.Read(k)
		return []byte(hex.EncodeToString(k) + "\n"), err
	})
	if err != nil {
		return nil, "", fmt.Errorf("audit context key: %w", err)
	}
	k, err := audit.ParseContextKey(b)
	return k, "INSECURE dev key " + path, err
}
