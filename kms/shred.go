package kms

import (
	"context"
	"errors"
)

// ErrShredded is wrapped by a key store when a named key was destroyed on purpose
// (crypto-shredding): what it wrapped is unreadable for good. The service answers
// FailedPrecondition and says so.
var ErrShredded = errors.New("key was shredded")

// Shredder is the optional interface of key stores that can destroy one named key for good,
// so that every data key wrapped under it, wherever a copy of the ciphertext lives, stays
// unreadable. A shredded name keeps a tombstone: later calls under it fail with ErrShredded
// (not ErrNotFound), and the name cannot be created again. Shredding an unknown name is
// ErrNotFound and changes nothing.
type Shredder interface {
	ShredKey(ctx context.Context, name string) error
}
