package audit

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
)

// Context digests are keyed, so that the public log does not let anyone confirm a guess.
//
// A data-key release's key context names a tenant and usually a case or a patient pseudonym.
// An unkeyed hash of it would let anyone who can read the log (it is public) test a guessed
// case number against every record. Instead each deployment holds a secret context key K (32
// random bytes, provisioned by the operator like the other key files); per tenant T,
//
//	K_T    = HKDF-SHA256(secret = K, salt = empty, info = "medicus-trust audit-context v1 tenant\x00" ‖ T, 32 bytes)
//	digest = lowercase hex of HMAC-SHA256(K_T, canonical context)
//
// where T is the context's "tenant" value (empty when it has none) and the canonical context
// is kms.Context.Canonical. An auditor holding K, or only K_T for one tenant (given out with
// `trustctl audit context-key`), checks a claimed context against a record offline with
// `trustctl audit check-context`; without a key the digest tells nothing.

// ContextKeySize is the size of a context key, deployment-wide or per tenant.
const ContextKeySize = 32

// TenantField is the context field whose value selects the per-tenant key.
const TenantField = "tenant"

const tenantInfo = "medicus-trust audit-context v1 tenant\x00"

// ContextKey is a deployment's audit context key.
type ContextKey struct {
	k []byte

	mu      sync.Mutex
	tenants map[string]*TenantKey // derived keys, at most maxCachedTenants
}

// maxCachedTenants bounds the derived keys a ContextKey keeps (a deployment has a few hundred
// tenants; a caller that sends made-up tenant names only makes derivations uncached).
const maxCachedTenants = 1024

// TenantKey is the context key of one tenant, derived from a ContextKey.
type TenantKey struct {
	tenant string
	k      []byte
}

// NewContextKey wraps 32 key bytes (copied).
func NewContextKey(b []byte) (*ContextKey, error) {
	if len(b) != ContextKeySize {
		return nil, fmt.Errorf("audit: context key is %d bytes, want %d", len(b), ContextKeySize)
	}
	return &ContextKey{k: bytes.Clone(b)}, nil
}

// ParseContextKey reads a context key file's contents: 64 hex characters (surrounding white
// space ignored) or 32 raw bytes. The error never shows the contents.
func ParseContextKey(b []byte) (*ContextKey, error) {
	k, err := parseKey(b)
	if err != nil {
		return nil, err
	}
	return &ContextKey{k: k}, nil
}

func parseKey(b []byte) ([]byte, error) {
	if len(b) == ContextKeySize {
		return bytes.Clone(b), nil
	}
	t := bytes.TrimSpace(b)
	k := make([]byte, hex.DecodedLen(len(t)))
	if _, err := hex.Decode(k, t); err != nil || len(k) != ContextKeySize {
		return nil, errors.New("audit: context key: want 64 hex characters or 32 raw bytes")
	}
	return k, nil
}

// Tenant derives the key of one tenant (remembered: every release asks for it).
func (c *ContextKey) Tenant(tenant string) *TenantKey {
	c.mu.Lock()
	t, ok := c.tenants[tenant]
	c.mu.Unlock()
	if ok {
		return t
	}
	k, err := hkdf.Key(sha256.New, c.k, nil, tenantInfo+tenant, ContextKeySize)
	if err != nil {
		panic("audit: hkdf: " + err.Error()) // only for lengths far beyond 32 bytes
	}
	t = &TenantKey{tenant: tenant, k: k}
	c.mu.Lock()
	if c.tenants == nil {
		c.tenants = map[string]*TenantKey{}
	}
	if len(c.tenants) < maxCachedTenants {
		c.tenants[tenant] = t
	}
	c.mu.Unlock()
	return t
}

// Digest is the keyed digest of a canonical context whose "tenant" value is tenant.
func (c *ContextKey) Digest(tenant string, canonical []byte) string {
	return c.Tenant(tenant).Digest(canonical)
}

// ParseTenantKey reads a tenant key as `trustctl audit context-key` prints it (64 hex
// characters) for the tenant it was derived for.
func ParseTenantKey(tenant string, b []byte) (*TenantKey, error) {
	k, err := parseKey(b)
	if err != nil {
		return nil, err
	}
	return &TenantKey{tenant: tenant, k: k}, nil
}

// Tenant is the tenant the key belongs to.
func (t *TenantKey) Tenant() string { return t.tenant }

// Hex is the key in hex, for handing it to that tenant's auditor.
func (t *TenantKey) Hex() string { return hex.EncodeToString(t.k) }

// Digest is the keyed digest of a canonical context of this tenant.
func (t *TenantKey) Digest(canonical []byte) string {
	m := hmac.New(sha256.New, t.k)
	m.Write(canonical)
	return hex.EncodeToString(m.Sum(nil))
}

// Check reports whether digest (a record's ContextDigest) is this key's digest of canonical,
// comparing in constant time.
func (t *TenantKey) Check(digest string, canonical []byte) bool {
	want := t.Digest(canonical)
	return len(digest) == len(want) && hmac.Equal([]byte(digest), []byte(want))
}
