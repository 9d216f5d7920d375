package local

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"

	"github.com/medicus-cloud/trust/internal/keyfile"
	"github.com/medicus-cloud/trust/secret"
)

// MasterKeyEnv is the environment variable that may carry the keyring master key (hex);
// trustd and trustctl read it.
const MasterKeyEnv = "MEDICUS_MASTER_KEY"

// MasterKey returns the keyring master key (trustd and trustctl keys both call it) from a file (raw 32 bytes or 64 hex characters) or
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
		k, err := keyfile.DecodeKey(b)
		if err != nil {
			return nil, "", fmt.Errorf("master key %s: %w", file, err)
		}
		return k, "file " + file, nil
	case env != "":
		k, err := keyfile.DecodeKey([]byte(env))
		if err != nil {
			return nil, "", fmt.Errorf("master key from %s: %w", MasterKeyEnv, err)
		}
		return k, "environment " + MasterKeyEnv, nil
	case dev:
		path := filepath.Join(dataDir, "dev-master.key")
		b, err := keyfile.LoadOrCreate(path, func() ([]byte, error) {
			k := make([]byte, 32)
			_, err := rand.Read(k)
			return []byte(hex.EncodeToString(k) + "\n"), err
		})
		if err != nil {
			return nil, "", err
		}
		k, err := keyfile.DecodeKey(b)
		return k, "INSECURE dev key " + path, err
	}
	return nil, "", fmt.Errorf("master key: set master_key_file or %s (dev mode alone may keep one in the data directory)", MasterKeyEnv)
}
