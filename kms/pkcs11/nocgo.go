//go:build !cgo

package pkcs11

import (
	"context"
	"errors"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/secret"
)

// errNoCgo: PKCS#11 modules are C libraries, loaded with cgo.
var errNoCgo = errors.New("pkcs11: this binary was built without cgo, which PKCS#11 modules need (build with CGO_ENABLED=1)")

// Store is not available in a build without cgo: New always fails.
type Store struct{}

// New fails: see errNoCgo.
func New(context.Context, Config, Options) (*Store, error) { return nil, errNoCgo }

// GenerateDataKey fails: see errNoCgo.
func (*Store) GenerateDataKey(context.Context, kms.Bound) (*kms.DataKey, error) {
	return nil, errNoCgo
}

// UnwrapDataKey fails: see errNoCgo.
func (*Store) UnwrapDataKey(context.Context, kms.Bound, []byte) (*secret.Bytes, error) {
	return nil, errNoCgo
}

// GetSecret fails: see errNoCgo.
func (*Store) GetSecret(context.Context, string) (*kms.Secret, error) { return nil, errNoCgo }

// CreateKey fails: see errNoCgo.
func (*Store) CreateKey(context.Context, string) error { return errNoCgo }

// RotateKey fails: see errNoCgo.
func (*Store) RotateKey(context.Context, string) error { return errNoCgo }

// PutSecret fails: see errNoCgo.
func (*Store) PutSecret(context.Context, string, *secret.Bytes) (uint64, error) { return 0, errNoCgo }

// SetMinDecryptionVersion fails: see errNoCgo.
func (*Store) SetMinDecryptionVersion(context.Context, string, uint32) error { return errNoCgo }

// Health fails: see errNoCgo.
func (*Store) Health(context.Context) error { return errNoCgo }

// Close does nothing.
func (*Store) Close() error { return nil }
