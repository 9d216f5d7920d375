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

// A CachingKeySource is a LeasedKeySource itself, so that a cache over a cache (over
// Client.KeySource(), say) drops a key when the inner one does rather than a whole TTL later.
var _ LeasedKeySource = (*CachingKeySource)(nil)

// GenerateDataKeyLeased is GenerateDataKey, also returning until when the key may be held: the
// end of the cache's own entry, its TTL or the underlying source's lease, whichever comes first.
func (c *CachingKeySource) GenerateDataKeyLeased(ctx context.Context, keyName string, kc kms.Context) (*secret.Bytes, []byte, time.Time, error) {
	epoch := c.epoch()
	dek, wrapped, lease, err := c.generate(ctx, keyName, kc)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	exp := c.expiry(lease)
	if digest, err := kc.Digest(); err == nil {
		exp = c.put(epoch, cacheID(keyName, wrapped, digest), dek, lease)
	}
	return dek, wrapped, exp, nil
}

// UnwrapDataKeyLeased is UnwrapDataKey, also returning until when the key may be held: the end
// of the cache entry that serves it.
func (c *CachingKeySource) UnwrapDataKeyLeased(ctx context.Context, keyName string, wrapped []byte, kc kms.Context) (*secret.Bytes, time.Time, error) {
	digest, err := kc.Digest()
	if err != nil {
		return nil, time.Time{}, err
	}
	id := cacheID(keyName, wrapped, digest)
	if k, exp := c.get(id); k != nil {
		return k, exp, nil
	}
	epoch := c.epoch()
	dek, lease, err := c.unwrap(ctx, keyName, wrapped, kc)
	if err != nil {
		return nil, time.Time{}, err
	}
	return dek, c.put(epoch, id, dek, lease), nil
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
