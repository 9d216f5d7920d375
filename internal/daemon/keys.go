package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/internal/keyfile"
	"github.com/medicus-cloud/trust/kms/local"
)

// MasterKeyEnv is the environment variable that may carry the keyring master key (hex).
const MasterKeyEnv = local.MasterKeyEnv

// nonceKeys loads the configured nonce keys, or one in the data directory.
func nonceKeys(files []string, dataDir string) ([][]byte, error) {
	if len(files) == 0 {
		b, err := keyfile.LoadOrCreate(filepath.Join(dataDir, "nonce.key"), func() ([]byte, error) {
			k := make([]byte, 32)
			_, err := rand.Read(k)
			return []byte(hex.EncodeToString(k) + "\n"), err
		})
		if err != nil {
			return nil, fmt.Errorf("nonce key: %w", err)
		}
		files = nil
		k, err := keyfile.DecodeKey(b)
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
		k, err := keyfile.DecodeKey(b)
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
	b, err := keyfile.LoadOrCreate(path, func() ([]byte, error) {
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
