package envelope

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/secret"
)

// CacheOptions bound a CachingKeySource. The zero value is safe: 256 keys for 5 minutes.
type CacheOptions struct {
	// MaxEntries is the most keys held; the least recently used goes first. Zero means 256.
	MaxEntries int
	// TTL is how long a key is kept after it was fetched, however often it is used. Zero means
	// 5 minutes.
	TTL time.Duration
	// Now defaults to time.Now.
	Now func() time.Time
}

// CachingKeySource keeps unwrapped data keys in memory, keyed by key name, wrapped key and
// context digest, so that opening the same object (or objects sharing a key) again does not
// call the underlying source. GenerateDataKey always calls through, and caches the new key for
// the reads that usually follow a write.
//
// Ownership: the cache keeps its own copy of each key and hands every caller a fresh copy,
// which the caller owns and may wipe. The cache wipes its copies when they expire, are evicted,
// or on Purge. It is safe for concurrent use.
//
// A cached key is released again without asking trustd, so a revoked grant takes effect only
// when the entry expires: keep TTL short. Over a LeasedKeySource (such as *sdk.Client) an entry
// also expires when trustd's lease on the key ends.
type CachingKeySource struct {
	src KeySource
	max int
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[[32]byte]*list.Element
	lru     *list.List // front = most recently used; values are *cacheEntry
	purges  uint64     // Purge calls so far: a key fetched before one is not kept
}

type cacheEntry struct {
	id      [32]byte
	key     *secret.Bytes
	expires time.Time
}

// NewCachingKeySource wraps src.
func NewCachingKeySource(src KeySource, o CacheOptions) *CachingKeySource {
	if o.MaxEntries <= 0 {
		o.MaxEntries = 256
	}
	if o.TTL <= 0 {
		o.TTL = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &CachingKeySource{src: src, max: o.MaxEntries, ttl: o.TTL, now: o.Now, entries: map[[32]byte]*list.Element{}, lru: list.New()}
}

// cacheID names an entry. Every part is length-prefixed, so no two triples collide.
func cacheID(keyName string, wrapped, digest []byte) [32]byte {
	h := sha256.New()
	var n [4]byte
	for _, p := range [][]byte{[]byte(keyName), wrapped, digest} {
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	var id [32]byte
	h.Sum(id[:0])
	return id
}

// GenerateDataKey calls the underlying source and caches the new key.
func (c *CachingKeySource) GenerateDataKey(ctx context.Context, keyName string, kc kms.Context) (*secret.Bytes, []byte, error) {
	dek, wrapped, _, err := c.GenerateDataKeyLeased(ctx, keyName, kc)
	return dek, wrapped, err
}

// UnwrapDataKey returns a copy of the cached key, or unwraps it through the underlying source.
func (c *CachingKeySource) UnwrapDataKey(ctx context.Context, keyName string, wrapped []byte, kc kms.Context) (*secret.Bytes, error) {
	dek, _, err := c.UnwrapDataKeyLeased(ctx, keyName, wrapped, kc)
	return dek, err
}

// get returns a copy of the entry's key and when the entry expires, or nil.
func (c *CachingKeySource) get(id [32]byte) (*secret.Bytes, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[id]
	if !ok {
		return nil, time.Time{}
	}
	e := el.Value.(*cacheEntry)
	if !c.now().Before(e.expires) {
		c.remove(el)
		return nil, time.Time{}
	}
	c.lru.MoveToFront(el)
	return secret.New(bytes.Clone(e.key.Reveal())), e.expires
}

// epoch is the number of Purge calls so far; put takes the value read before the fetch.
func (c *CachingKeySource) epoch() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.purges
}

// put stores a copy of k until its TTL or its lease (when not zero) ends, and returns that end;
// the caller keeps k. A key fetched before a Purge (epoch differs) is not stored.
func (c *CachingKeySource) put(epoch uint64, id [32]byte, k *secret.Bytes, lease time.Time) time.Time {
	exp := c.expiry(lease)
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.purges {
		return exp
	}
	e := &cacheEntry{id: id, key: secret.New(bytes.Clone(k.Reveal())), expires: exp}
	if old, ok := c.entries[id]; ok {
		c.remove(old)
	}
	c.entries[id] = c.lru.PushFront(e)
	for c.lru.Len() > c.max {
		c.remove(c.lru.Back())
	}
	return e.expires
}

// remove wipes and drops an entry. Callers hold c.mu.
func (c *CachingKeySource) remove(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	delete(c.entries, e.id)
	e.key.Wipe()
}

// Len returns the number of keys held, expired ones included until they are next touched or
// purged.
func (c *CachingKeySource) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// PurgeExpired wipes and drops the keys whose lifetime is over. Callers that want expired keys
// gone from memory promptly, rather than on the next lookup, call it from a ticker.
func (c *CachingKeySource) PurgeExpired() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for el := c.lru.Back(); el != nil; {
		prev := el.Prev()
		if !now.Before(el.Value.(*cacheEntry).expires) {
			c.remove(el)
		}
		el = prev
	}
}

// Purge wipes and drops every key, for example when the workload's grant changes or on
// shutdown. A key being fetched while Purge runs goes to its caller but is not kept.
func (c *CachingKeySource) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.purges++
	for c.lru.Len() > 0 {
		c.remove(c.lru.Back())
	}
}
