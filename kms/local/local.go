// Package local is the embedded key store: keys and secrets in one file, encrypted at rest with
// AES-256-GCM under a 256-bit master key, written atomically with 0600 permissions.
//
// Data keys are wrapped under a key-encryption key derived with HKDF-SHA256 from the named root
// key's version and the SHA-256 of the context, so a wrapped key opens only under its own name
// and context. It suits one trustd with a local disk; replicated deployments use Vault.
package local

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/medicus-cloud/trust/internal/atomicfile"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/secret"
)

// MasterKeySize is the size of the master key.
const MasterKeySize = 32

const (
	fileMagic    = "medicus-trust/v1 keyring\n"
	wrappedMagic = "mtw1"
	kekLabel     = "medicus-trust/v1 local kek"
)

// Options configure a Keyring.
type Options struct {
	// Path of the keyring file. It is created on the first write.
	Path string
	// MasterKey encrypts the file; 32 bytes. The caller keeps it out of the data directory.
	MasterKey *secret.Bytes
	// Now defaults to time.Now.
	Now func() time.Time
}

// Keyring is the local key store. It is safe for concurrent use within one process; it rereads
// the file when another process (trustctl) has replaced it.
type Keyring struct {
	path string
	aead cipher.AEAD
	now  func() time.Time

	mu    sync.Mutex
	state *state
	stamp fileStamp
}

type state struct {
	Keys    map[string]*rootKey `json:"keys"`
	Secrets map[string]*secrets `json:"secrets"`
	// Shredded holds the tombstones of shredded keys (shred.go).
	Shredded map[string]time.Time `json:"shredded,omitempty"`
}

type rootKey struct {
	Versions []version `json:"versions"`
	// MinDecryptionVersion refuses to unwrap keys wrapped under older versions.
	MinDecryptionVersion uint32 `json:"min_decryption_version"`
}

type secrets struct {
	Versions []version `json:"versions"`
}

type version struct {
	Material []byte    `json:"material"`
	Created  time.Time `json:"created"`
}

type fileStamp struct {
	mod  time.Time
	size int64
}

var (
	_ kms.KeyStore = (*Keyring)(nil)
	_ kms.Admin    = (*Keyring)(nil)
)

// Open returns a keyring. A missing file is an empty keyring; a file that does not decrypt under
// the master key is an error.
func Open(o Options) (*Keyring, error) {
	if o.Path == "" {
		return nil, errors.New("local keyring: no path")
	}
	if o.MasterKey.Len() != MasterKeySize {
		return nil, fmt.Errorf("local keyring: master key is %d bytes, want %d", o.MasterKey.Len(), MasterKeySize)
	}
	block, err := aes.NewCipher(o.MasterKey.Reveal())
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	k := &Keyring{path: o.Path, aead: aead, now: o.Now}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, err := k.load(); err != nil {
		return nil, err
	}
	return k, nil
}

// load rereads the file if it changed. Callers hold k.mu.
func (k *Keyring) load() (*state, error) {
	fi, err := os.Stat(k.path)
	if errors.Is(err, os.ErrNotExist) {
		if k.state == nil {
			k.state = &state{Keys: map[string]*rootKey{}, Secrets: map[string]*secrets{}}
		}
		return k.state, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", kms.ErrUnavailable, err)
	}
	stamp := fileStamp{mod: fi.ModTime(), size: fi.Size()}
	if k.state != nil && stamp == k.stamp {
		return k.state, nil
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: local keyring: %s is readable by others (mode %v); chmod 600 it", kms.ErrUnavailable, k.path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(k.path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", kms.ErrUnavailable, err)
	}
	if !bytes.HasPrefix(raw, []byte(fileMagic)) || len(raw) < len(fileMagic)+k.aead.NonceSize() {
		return nil, fmt.Errorf("%w: local keyring: %s is not a keyring file", kms.ErrUnavailable, k.path)
	}
	body := raw[len(fileMagic):]
	plain, err := k.aead.Open(nil, body[:k.aead.NonceSize()], body[k.aead.NonceSize():], []byte(fileMagic))
	if err != nil {
		return nil, fmt.Errorf("%w: local keyring: %s does not decrypt under this master key", kms.ErrUnavailable, k.path)
	}
	defer clear(plain)
	var s state
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, fmt.Errorf("%w: local keyring: %s: %v", kms.ErrUnavailable, k.path, err)
	}
	if s.Keys == nil {
		s.Keys = map[string]*rootKey{}
	}
	if s.Secrets == nil {
		s.Secrets = map[string]*secrets{}
	}
	k.state, k.stamp = &s, stamp
	return k.state, nil
}

// save writes the state atomically: temp file, fsync, rename, fsync of the directory.
func (k *Keyring) save(s *state) error {
	plain, err := json.Marshal(s)
	if err != nil {
		return err
	}
	defer clear(plain)
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	out := append([]byte(fileMagic), nonce...)
	out = k.aead.Seal(out, nonce, plain, []byte(fileMagic))
	dir := filepath.Dir(k.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(k.path, out, 0o600); err != nil {
		return err
	}
	fi, err := os.Stat(k.path)
	if err != nil {
		return err
	}
	k.state, k.stamp = s, fileStamp{mod: fi.ModTime(), size: fi.Size()}
	return nil
}

// update applies f to a copy of the state and saves it, so a failed write leaves memory as the
// file is.
func (k *Keyring) update(f func(s *state) error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	cur, err := k.load()
	if err != nil {
		return err
	}
	raw, err := json.Marshal(cur)
	if err != nil {
		return err
	}
	var next state
	if err := json.Unmarshal(raw, &next); err != nil {
		return err
	}
	clear(raw)
	if err := f(&next); err != nil {
		return err
	}
	return k.save(&next)
}

func random32() ([]byte, error) {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	return b, err
}

// CreateKey creates a root key for data keys.
func (k *Keyring) CreateKey(_ context.Context, name string) error {
	if err := kms.CheckName(name); err != nil {
		return err
	}
	m, err := random32()
	if err != nil {
		return err
	}
	return k.update(func(s *state) error {
		if _, ok := s.Keys[name]; ok {
			return fmt.Errorf("key %q: %w", name, kms.ErrExists)
		}
		if _, ok := s.Shredded[name]; ok {
			return fmt.Errorf("key %q: %w: the name is not reused", name, kms.ErrShredded)
		}
		s.Keys[name] = &rootKey{Versions: []version{{Material: m, Created: k.now().UTC()}}, MinDecryptionVersion: 1}
		return nil
	})
}

// RotateKey adds a new version; new data keys are wrapped under it, older ones still open.
func (k *Keyring) RotateKey(_ context.Context, name string) error {
	m, err := random32()
	if err != nil {
		return err
	}
	return k.update(func(s *state) error {
		rk, ok := s.Keys[name]
		if !ok {
			return fmt.Errorf("key %q: %w", name, kms.ErrNotFound)
		}
		rk.Versions = append(rk.Versions, version{Material: m, Created: k.now().UTC()})
		return nil
	})
}

// SetMinDecryptionVersion refuses data keys wrapped under versions below v.
func (k *Keyring) SetMinDecryptionVersion(_ context.Context, name string, v uint32) error {
	return k.update(func(s *state) error {
		rk, ok := s.Keys[name]
		if !ok {
			return fmt.Errorf("key %q: %w", name, kms.ErrNotFound)
		}
		if v < 1 || int(v) > len(rk.Versions) {
			return fmt.Errorf("key %q: min decryption version %d outside 1..%d", name, v, len(rk.Versions))
		}
		rk.MinDecryptionVersion = v
		return nil
	})
}

// PutSecret stores a new version of a secret and takes ownership of value.
func (k *Keyring) PutSecret(_ context.Context, name string, value *secret.Bytes) (uint64, error) {
	if err := kms.CheckName(name); err != nil {
		return 0, err
	}
	var v uint64
	err := k.update(func(s *state) error {
		sec := s.Secrets[name]
		if sec == nil {
			sec = &secrets{}
			s.Secrets[name] = sec
		}
		sec.Versions = append(sec.Versions, version{Material: bytes.Clone(value.Reveal()), Created: k.now().UTC()})
		v = uint64(len(sec.Versions))
		return nil
	})
	return v, err
}

// GetSecret returns the newest version.
func (k *Keyring) GetSecret(_ context.Context, name string) (*kms.Secret, error) {
	if err := kms.CheckName(name); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	s, err := k.load()
	if err != nil {
		return nil, err
	}
	sec, ok := s.Secrets[name]
	if !ok || len(sec.Versions) == 0 {
		return nil, fmt.Errorf("secret %q: %w", name, kms.ErrNotFound)
	}
	n := len(sec.Versions)
	return &kms.Secret{Value: secret.New(bytes.Clone(sec.Versions[n-1].Material)), Version: uint64(n)}, nil
}

func (k *Keyring) kek(name string, rk *rootKey, v uint32, digest []byte) (cipher.AEAD, error) {
	info := append([]byte(kekLabel), 0)
	info = binary.BigEndian.AppendUint32(info, uint32(len(name)))
	info = append(info, name...)
	info = append(info, digest...)
	material := rk.Versions[v-1].Material
	key, err := hkdf.Key(sha256.New, material, nil, string(info), 32)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func wrapAAD(name string, v uint32, digest []byte) []byte {
	b := binary.BigEndian.AppendUint32([]byte(wrappedMagic), v)
	b = binary.BigEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	return append(b, digest...)
}

func (k *Keyring) rootKey(name string) (*rootKey, error) {
	if err := kms.CheckName(name); err != nil {
		return nil, err
	}
	s, err := k.load()
	if err != nil {
		return nil, err
	}
	rk, ok := s.Keys[name]
	if at, gone := s.Shredded[name]; gone {
		return nil, fmt.Errorf("key %q: %w at %s", name, kms.ErrShredded, at.Format(time.RFC3339))
	}
	if !ok || len(rk.Versions) == 0 {
		return nil, fmt.Errorf("key %q: %w", name, kms.ErrNotFound)
	}
	return rk, nil
}

// GenerateDataKey makes a random data key and wraps it under the newest version.
// Wrapped format: "mtw1" || version (uint32) || GCM nonce (12) || ciphertext.
func (k *Keyring) GenerateDataKey(_ context.Context, b kms.Bound) (*kms.DataKey, error) {
	if err := b.Check(); err != nil {
		return nil, err
	}
	name, digest := b.Name(), b.Digest()
	k.mu.Lock()
	defer k.mu.Unlock()
	rk, err := k.rootKey(name)
	if err != nil {
		return nil, err
	}
	v := uint32(len(rk.Versions))
	aead, err := k.kek(name, rk, v, digest)
	if err != nil {
		return nil, err
	}
	dek, err := random32()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := binary.BigEndian.AppendUint32([]byte(wrappedMagic), v)
	out = append(out, nonce...)
	out = aead.Seal(out, nonce, dek, wrapAAD(name, v, digest))
	return &kms.DataKey{Plaintext: secret.New(dek), Wrapped: out}, nil
}

// UnwrapDataKey opens a key made by GenerateDataKey under the same name and context.
func (k *Keyring) UnwrapDataKey(_ context.Context, b kms.Bound, wrapped []byte) (*secret.Bytes, error) {
	if err := b.Check(); err != nil {
		return nil, err
	}
	name, digest := b.Name(), b.Digest()
	const hdr = len(wrappedMagic) + 4 + 12
	if len(wrapped) != hdr+kms.DataKeySize+16 || string(wrapped[:4]) != wrappedMagic {
		return nil, fmt.Errorf("%w: not a local keyring wrapped key", kms.ErrBadWrapped)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	rk, err := k.rootKey(name)
	if err != nil {
		return nil, err
	}
	v := binary.BigEndian.Uint32(wrapped[4:8])
	if v < 1 || int(v) > len(rk.Versions) {
		return nil, fmt.Errorf("%w: key version %d unknown", kms.ErrBadWrapped, v)
	}
	if v < rk.MinDecryptionVersion {
		return nil, fmt.Errorf("%w: key version %d is below the minimum decryption version %d", kms.ErrBadWrapped, v, rk.MinDecryptionVersion)
	}
	aead, err := k.kek(name, rk, v, digest)
	if err != nil {
		return nil, err
	}
	dek, err := aead.Open(nil, wrapped[8:hdr], wrapped[hdr:], wrapAAD(name, v, digest))
	if err != nil {
		return nil, fmt.Errorf("%w: does not open under key %q and this context", kms.ErrBadWrapped, name)
	}
	return secret.New(dek), nil
}

// Health reports whether the keyring file can be read and decrypted.
func (k *Keyring) Health(context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, err := k.load()
	return err
}
