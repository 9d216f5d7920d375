package envelope

import (
	"context"
	"time"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/secret"
)

// LeasedKeySource is a KeySource that also says until when each key it returns may be held
// (trustd's release lease). A CachingKeySource over one drops every key when its lease ends,
// however long its TTL, so the next use asks the source again, which attests again when its
// own attestation's lease is over. A zero time means no lease beyond the TTL.
type LeasedKeySource interface {
	KeySource
	GenerateDataKeyLeased(ctx context.Context, keyName string, kc kms.Context) (dek *secret.Bytes, wrapped []byte, lease time.Time, err error)
	UnwrapDataKeyLeased(ctx context.Context, keyName string, wrapped []byte, kc kms.Context) (dek *secret.Bytes, lease time.Time, err error)
}

func (c *CachingKeySource) generate(ctx context.Context, keyName string, kc kms.Context) (*secret.Bytes, []byte, time.Time, error) {
	if ls, ok := c.src.(LeasedKeySource); ok {
		return ls.GenerateDataKeyLeased(ctx, keyName, kc)
	}
	dek, wrapped, err := c.src.GenerateDataKey(ctx, keyName, kc)
	return dek, wrapped, time.Time{}, err
}

func (c *CachingKeySource) unwrap(ctx context.Context, keyName string, wrapped []byte, kc kms.Context) (*secret.Bytes, time.Time, error) {
	if ls, ok := c.src.(LeasedKeySource); ok {
		return ls.UnwrapDataKeyLeased(ctx, keyName, wrapped, kc)
	}
	dek, err := c.src.UnwrapDataKey(ctx, keyName, wrapped, kc)
	return dek, time.Time{}, err
}

// expiry is when an entry fetched now under lease expires.
func (c *CachingKeySource) expiry(lease time.Time) time.Time {
	exp := c.now().Add(c.ttl)
	if !lease.IsZero() && lease.Before(exp) {
		return lease
	}
	return exp
}
