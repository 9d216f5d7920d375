package kms

import (
	"crypto/sha256"
	"fmt"
	"maps"
)

// Bound is a key name with its context, checked and encoded once: what a data-key release is
// about. The service binds a release once and hands the same value to the policy, the key store
// and the audit record, so none of them checks the name or encodes the context again.
//
// A Bound is immutable: its fields are unexported and its accessors return copies. The zero
// Bound is not bound; key stores reject it with ErrInvalidName (see Check).
type Bound struct {
	name   string
	kc     Context // a private copy
	canon  string  // Context.Canonical, as a string so that it cannot change
	digest [sha256.Size]byte
}

// Bind checks name (CheckName) and the context (Context.Canonical) and binds them. The errors
// wrap ErrInvalidName and ErrBadContext.
func Bind(name string, kc Context) (Bound, error) {
	if err := CheckName(name); err != nil {
		return Bound{}, err
	}
	canon, err := kc.Canonical()
	if err != nil {
		return Bound{}, err
	}
	return Bound{name: name, kc: maps.Clone(kc), canon: string(canon), digest: sha256.Sum256(canon)}, nil
}

// MustBind is Bind for names and contexts fixed in the source (tests, examples); it panics on an
// error.
func MustBind(name string, kc Context) Bound {
	b, err := Bind(name, kc)
	if err != nil {
		panic(err)
	}
	return b
}

// Check fails with ErrInvalidName unless b was made by Bind. Key stores call it first, so that
// a zero Bound fails closed.
func (b Bound) Check() error {
	if b.name == "" {
		return fmt.Errorf("%w: key name and context not bound (kms.Bind)", ErrInvalidName)
	}
	return nil
}

// Name is the key name.
func (b Bound) Name() string { return b.name }

// Value returns the context's value for key.
func (b Bound) Value(key string) (string, bool) {
	v, ok := b.kc[key]
	return v, ok
}

// Len is the number of pairs in the context.
func (b Bound) Len() int { return len(b.kc) }

// Context returns a copy of the context.
func (b Bound) Context() Context { return maps.Clone(b.kc) }

// Canonical returns a copy of the context's canonical encoding (Context.Canonical).
func (b Bound) Canonical() []byte { return []byte(b.canon) }

// Digest returns SHA-256 of the canonical encoding (Context.Digest): the derivation context.
func (b Bound) Digest() []byte { return append([]byte(nil), b.digest[:]...) }
