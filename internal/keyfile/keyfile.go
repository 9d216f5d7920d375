// Package keyfile reads key material that operators provision as files: token signing keys, the
// shared audit note key, connection strings, master and nonce keys.
//
// Such files may be readable by the owner and the owner's group, the way Kubernetes Secret
// volumes with an fsGroup and systemd credentials present them to a non-root service, but
// never by others, and never writable by the group. Files trustd creates itself stay 0600.
package keyfile

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/medicus-cloud/trust/internal/atomicfile"
	"github.com/medicus-cloud/trust/secret"
	"io"
	"os"
	"path/filepath"
)

// MaxSize bounds a key file.
const MaxSize = 64 << 10

// Read opens path, refuses it when others may access it or its group may write it, and reads
// at most MaxSize bytes. what names the file in errors; the contents never appear in them.
func Read(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %s is not a regular file", what, path)
	}
	if perm := fi.Mode().Perm(); perm&0o027 != 0 {
		return nil, fmt.Errorf("%s: %s is readable by others or writable by its group (mode %v): want 0600, 0640 or 0440", what, path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s: %s is larger than %d bytes", what, path, MaxSize)
	}
	return b, nil
}

// ID returns the key ID of a public key: base64url (no padding) of SHA-256 of its
// SubjectPublicKeyInfo. Result-token keys and security-team keys are named this way.
func ID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// DecodeKey decodes a 32-byte key file: 32 raw bytes, or 64 hex characters with optional
// surrounding white space.
func DecodeKey(b []byte) (*secret.Bytes, error) {
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

// LoadOrCreate reads path (refusing it, as keyfile does, when others may read it), or creates
// it with 0600 from make when missing.
func LoadOrCreate(path string, make func() ([]byte, error)) ([]byte, error) {
	if _, err := os.Stat(path); err == nil || !errors.Is(err, os.ErrNotExist) {
		return Read(path, "key file")
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
		return Read(path, "key file") // another process made it first
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}
