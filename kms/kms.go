// Package kms defines what trustd needs from a key store — data keys bound to a context, and
// versioned secrets — and the rules every backend shares: names, contexts and errors.
//
// Backends live in subpackages (local, vault, pkcs11) and must pass the conformance suite in
// kmstest; package route puts several behind one KeyStore, a store per tenant.
// Nothing here ever returns key material as a bare []byte: see package secret.
package kms

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/medicus-cloud/trust/secret"
)

// KeyStore releases key material to trustd. Implementations must be safe for concurrent use and
// must fail closed: any doubt is an error, never a partial result.
type KeyStore interface {
	// GenerateDataKey returns a fresh 256-bit data key, in plaintext and wrapped under the bound
	// key name and context. The name and context were checked by Bind; a store does not check
	// them again, but rejects a zero Bound (Bound.Check).
	GenerateDataKey(ctx context.Context, b Bound) (*DataKey, error)
	// UnwrapDataKey opens a wrapped data key. It fails unless the bound name and context are the
	// ones it was wrapped under.
	UnwrapDataKey(ctx context.Context, b Bound, wrapped []byte) (*secret.Bytes, error)
	// GetSecret returns the newest version of a secret.
	GetSecret(ctx context.Context, name string) (*Secret, error)
}

// Admin manages keys and secrets. It is separate from KeyStore so that the release path cannot
// change anything.
type Admin interface {
	CreateKey(ctx context.Context, name string) error
	RotateKey(ctx context.Context, name string) error
	PutSecret(ctx context.Context, name string, value *secret.Bytes) (version uint64, err error)
}

// DataKey is a data key in both forms.
type DataKey struct {
	Plaintext *secret.Bytes
	// Wrapped is opaque to callers and safe to store beside the ciphertext.
	Wrapped []byte
}

// Secret is one version of a secret.
type Secret struct {
	Value   *secret.Bytes
	Version uint64
}

// Errors that backends wrap. The service maps them to gRPC codes at its edge.
var (
	ErrNotFound    = errors.New("not found")             // NotFound
	ErrUnavailable = errors.New("key store unavailable") // Unavailable
	ErrDenied      = errors.New("key store refused")     // Unavailable: trustd's own access is broken
	ErrBadWrapped  = errors.New("wrapped key rejected")  // InvalidArgument
	ErrInvalidName = errors.New("invalid name")          // InvalidArgument
	ErrExists      = errors.New("already exists")        // AlreadyExists
	ErrBadContext  = errors.New("invalid key context")   // InvalidArgument
)

// DataKeySize is the size of every data key: AES-256.
const DataKeySize = 32

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*(\.[a-z0-9_-]+)*(/[a-z0-9][a-z0-9_-]*(\.[a-z0-9_-]+)*)*$`)

// MaxNameLen bounds names.
const MaxNameLen = 128

// CheckName enforces the name grammar shared by policies and key stores: lowercase segments of
// [a-z0-9._-] separated by single slashes, each starting with a letter or digit, no "..", at most
// 128 bytes. Names are never paths: backends map them onto their own namespaces.
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidName, MaxNameLen)
	}
	if !nameRE.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("%w: %q must be lowercase segments of [a-z0-9._-] separated by '/'", ErrInvalidName, name)
	}
	return nil
}

// Context is the key derivation context: tenant, case or patient pseudonym, content type.
type Context map[string]string

// Context limits.
const (
	MaxContextPairs    = 16
	MaxContextKeyLen   = 64
	MaxContextValueLen = 256
)

var ctxKeyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// Canonical validates the context and returns its canonical encoding: the pairs sorted by key,
// each key and value length-prefixed (uint32 big-endian), after a label.
func (c Context) Canonical() ([]byte, error) {
	if len(c) > MaxContextPairs {
		return nil, fmt.Errorf("%w: %d pairs, at most %d", ErrBadContext, len(c), MaxContextPairs)
	}
	keys := make([]string, 0, len(c))
	for k, v := range c {
		if len(k) > MaxContextKeyLen || !ctxKeyRE.MatchString(k) {
			return nil, fmt.Errorf("%w: key %q must match [a-z0-9][a-z0-9_.-]* and be at most %d bytes", ErrBadContext, k, MaxContextKeyLen)
		}
		if len(v) > MaxContextValueLen || !utf8.ValidString(v) {
			return nil, fmt.Errorf("%w: value of %q must be UTF-8 of at most %d bytes", ErrBadContext, k, MaxContextValueLen)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := lp(nil, "medicus-trust/v1 context")
	for _, k := range keys {
		b = lp(lp(b, k), c[k])
	}
	return b, nil
}

// Digest returns SHA-256 of the canonical encoding: the derivation context of DESIGN.md.
func (c Context) Digest() ([]byte, error) {
	b, err := c.Canonical()
	if err != nil {
		return nil, err
	}
	d := sha256.Sum256(b)
	return d[:], nil
}

func lp(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
