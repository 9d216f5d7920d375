// Package vault is the kms backend on HashiCorp Vault: data keys from the transit engine with
// derived keys, secrets from KV version 2. It uses only API paths that OpenBao shares with Vault
// (transit, KV v2, token, AppRole and Kubernetes login, namespaces as a header), so it works
// against OpenBao too; the tests run against Vault.
//
// Every data key is bound to its kms.Context: the transit key must have been created with
// derived=true and each call passes base64(Context.Digest()) as the derivation context, so a
// wrapped key opens only under the context it was made for. The store checks that a key is
// derived before it first uses it and refuses keys that are not.
//
// Names never become Vault paths directly. A name is checked with kms.CheckName, split into a
// tenant and the rest, and mapped through Config onto that tenant's mounts; every path segment
// is then checked to be one that URL escaping leaves unchanged, so nothing can climb out of the
// configured mounts. The store logs in with a token file, AppRole or a Kubernetes
// service-account token, renews its token and logs in again on its own, and fails closed:
// errors wrap kms.ErrUnavailable, kms.ErrDenied, kms.ErrNotFound or kms.ErrBadWrapped.
//
// It is not a general Vault client: it touches transit and KV v2 under the configured mounts,
// its own token endpoints and the login endpoint, nothing else. The Vault policy for releasing
// needs, per tenant: read on <transit>/keys/*, update on <transit>/datakey/plaintext/* and
// <transit>/decrypt/*, read on <kv>/data/<prefix>/*. The Admin methods also need create and
// update on <transit>/keys/* and <kv>/data/<prefix>/*, and update on <transit>/rewrap/*.
// scripts/vault-dev.sh and package vaulttest write such policies.
package vault

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medicus-cloud/trust/internal/keyfile"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/secret"
)

// Options are what a test or trustd injects. The zero value is the real thing.
type Options struct {
	// Transport replaces the HTTP transport built from Config.TLS (for example to trace calls).
	Transport http.RoundTripper
	// Now defaults to time.Now.
	Now func() time.Time
	// After defaults to time.After; it paces retries and token renewal.
	After func(time.Duration) <-chan time.Time
	// ReadFile defaults to os.ReadFile; it reads the CA and the client certificate.
	ReadFile func(string) ([]byte, error)
	// ReadSecretFile reads the client key and the credential files (token, AppRole IDs,
	// Kubernetes JWT). It defaults to keyfile.Read, which refuses files that others may read
	// or that the group may write.
	ReadSecretFile func(string) ([]byte, error)
}

// Store is a kms.KeyStore and kms.Admin on Vault. It is safe for concurrent use; Close stops
// its token renewal.
type Store struct {
	cfg    Config
	opts   Options
	router *router
	http   *http.Client

	timeout                time.Duration
	attempts               int
	minBackoff, maxBackoff time.Duration

	sess         atomic.Pointer[session]
	loginMu      sync.Mutex
	gen          uint64
	lastLoginErr error
	lastLoginAt  time.Time

	keysMu sync.Mutex
	keys   map[string]time.Time // transit keys seen to be derived, and when

	kick      chan struct{}
	bg        context.Context // background renewal; Close cancels it
	bgCancel  context.CancelFunc
	stop      chan struct{}
	done      chan struct{}
	closed    atomic.Bool
	closeOnce sync.Once
}

var (
	_ kms.KeyStore = (*Store)(nil)
	_ kms.Admin    = (*Store)(nil)
)

// keyCheckTTL is how long a key once seen to be derived is trusted to stay so. Vault cannot
// change a key's derivation; only deleting and recreating it could.
const keyCheckTTL = 5 * time.Minute

// New validates cfg, logs in and starts token renewal. If Vault cannot be reached, New still
// returns the store, which keeps trying to log in in the background and fails every call with
// kms.ErrUnavailable until then; refused credentials, a certificate that does not verify and
// bad configuration are errors.
// Call Close when done.
func New(ctx context.Context, cfg Config, opts Options) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	if opts.ReadSecretFile == nil {
		opts.ReadSecretFile = func(path string) ([]byte, error) { return keyfile.Read(path, "credential file") }
	}
	hc, err := newHTTPClient(&cfg, &opts)
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg: cfg, opts: opts, router: newRouter(&cfg), http: hc,
		timeout:    orDuration(cfg.Timeout, DefaultTimeout),
		attempts:   cfg.Retry.Attempts,
		minBackoff: orDuration(cfg.Retry.MinBackoff, DefaultMinBackoff),
		maxBackoff: orDuration(cfg.Retry.MaxBackoff, DefaultMaxBackoff),
		keys:       map[string]time.Time{},
		kick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	if s.attempts == 0 {
		s.attempts = DefaultAttempts
	}
	s.bg, s.bgCancel = context.WithCancel(context.Background())
	s.maxBackoff = max(s.maxBackoff, s.minBackoff)
	if _, err := s.relogin(ctx, 0); err != nil && (!isUnavailable(err) || certificateError(err) != nil) {
		s.bgCancel()
		return nil, err
	}
	go s.maintain()
	return s, nil
}

// Close stops token renewal and revokes a token the store obtained by logging in. A token
// from a token file belongs to the operator and is left alone.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true) // no new calls, and so no new login
		s.bgCancel()
		close(s.stop)
		<-s.done
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.revoke(ctx)
		s.http.CloseIdleConnections()
	})
	return nil
}

func orDuration(d Duration, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return time.Duration(d)
}

// transitKeyInfo is the part of transit's key description the store relies on.
type transitKeyInfo struct {
	Data struct {
		Derived              bool   `json:"derived"`
		Type                 string `json:"type"`
		LatestVersion        int    `json:"latest_version"`
		MinDecryptionVersion int    `json:"min_decryption_version"`
	} `json:"data"`
}

// aeadTypes are the transit key types whose derived keys bind the context into encryption.
var aeadTypes = map[string]bool{"aes256-gcm96": true, "aes128-gcm96": true, "chacha20-poly1305": true}

// readKey describes a transit key, or reports kms.ErrNotFound.
func (s *Store) readKey(ctx context.Context, name string) (*transitKeyInfo, error) {
	p, err := s.router.transitPath(name, "keys")
	if err != nil {
		return nil, err
	}
	rep, err := s.call(ctx, "read key "+strconv.Quote(name), http.MethodGet, p, nil, nil)
	if err != nil {
		return nil, err
	}
	switch {
	case rep.status == http.StatusNotFound:
		return nil, fmt.Errorf("vault: key %q: %w", name, kms.ErrNotFound)
	case rep.status >= 400:
		return nil, fmt.Errorf("vault: read key %q: Vault answered %d %s", name, rep.status, rep.message())
	}
	var ki transitKeyInfo
	if err := json.Unmarshal(rep.body, &ki); err != nil {
		return nil, fmt.Errorf("vault: read key %q: malformed answer", name)
	}
	return &ki, nil
}

// checkDerived makes sure the key exists and derives per context before a release uses it:
// a non-derived key would silently ignore the context.
func (s *Store) checkDerived(ctx context.Context, name string) error {
	now := s.opts.Now()
	s.keysMu.Lock()
	seen, ok := s.keys[name]
	s.keysMu.Unlock()
	if ok && now.Sub(seen) < keyCheckTTL {
		return nil
	}
	ki, err := s.readKey(ctx, name)
	if isNotFound(err) {
		return s.checkShredded(ctx, name, err) // shred.go
	}
	if err != nil {
		return err
	}
	if !ki.Data.Derived || !aeadTypes[ki.Data.Type] {
		return fmt.Errorf("vault: key %q: %w: it must be a derived AEAD key (derived=%t, type %q); recreate it with derived=true", name, kms.ErrDenied, ki.Data.Derived, ki.Data.Type)
	}
	// A shred that stopped after its tombstone leaves the key in transit: the tombstone alone
	// must stop releases (shred.go).
	if err := s.checkShredded(ctx, name, nil); err != nil {
		return err
	}
	s.keysMu.Lock()
	s.keys[name] = now
	s.keysMu.Unlock()
	return nil
}

func (s *Store) forgetKey(name string) {
	s.keysMu.Lock()
	delete(s.keys, name)
	s.keysMu.Unlock()
}

// contextParam is transit's derivation context: the bound context's digest, base64.
func contextParam(b kms.Bound) (string, error) {
	if err := b.Check(); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b.Digest()), nil
}

// GenerateDataKey asks transit for a new 256-bit key under the named key and the context.
// The wrapped form is transit's ciphertext ("vault:v<N>:..."), so operators can rewrap it with
// Vault's own tools.
func (s *Store) GenerateDataKey(ctx context.Context, b kms.Bound) (*kms.DataKey, error) {
	kctx, err := contextParam(b)
	if err != nil {
		return nil, err
	}
	name := b.Name()
	p, err := s.router.transitPath(name, "datakey", "plaintext")
	if err != nil {
		return nil, err
	}
	if err := s.checkDerived(ctx, name); err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]any{"context": kctx, "bits": 256})
	rep, err := s.call(ctx, "generate data key "+strconv.Quote(name), http.MethodPut, p, nil, body)
	if err != nil {
		return nil, err
	}
	if rep.status == http.StatusNotFound {
		s.forgetKey(name)
		return nil, fmt.Errorf("vault: key %q: %w", name, kms.ErrNotFound)
	}
	if rep.status >= 400 {
		// The key may have been deleted since it was checked: say so rather than guess.
		s.forgetKey(name)
		if _, err := s.readKey(ctx, name); isNotFound(err) {
			return nil, err
		}
		return nil, fmt.Errorf("vault: generate data key %q: Vault answered %d %s", name, rep.status, rep.message())
	}
	var out struct {
		Data struct {
			Plaintext  []byte `json:"plaintext"`
			Ciphertext string `json:"ciphertext"`
		} `json:"data"`
	}
	err = json.Unmarshal(rep.body, &out)
	clear(rep.body)
	if err != nil || len(out.Data.Plaintext) != kms.DataKeySize || parseWrapped([]byte(out.Data.Ciphertext)) != nil {
		clear(out.Data.Plaintext)
		return nil, fmt.Errorf("vault: generate data key %q: malformed answer", name)
	}
	return &kms.DataKey{Plaintext: secret.New(out.Data.Plaintext), Wrapped: []byte(out.Data.Ciphertext)}, nil
}

// maxWrapped bounds a wrapped key: a 32-byte key in transit's format is about 90 bytes.
const maxWrapped = 512

var wrappedRE = regexp.MustCompile(`^vault:v[1-9][0-9]{0,9}:([A-Za-z0-9+/]+={0,2})$`)

// parseWrapped checks the shape of transit ciphertext before it goes anywhere near Vault.
func parseWrapped(w []byte) error {
	if len(w) == 0 || len(w) > maxWrapped {
		return fmt.Errorf("%w: %d bytes, not a Vault transit ciphertext", kms.ErrBadWrapped, len(w))
	}
	m := wrappedRE.FindSubmatch(w)
	if m == nil {
		return fmt.Errorf("%w: not a Vault transit ciphertext", kms.ErrBadWrapped)
	}
	raw, err := base64.StdEncoding.DecodeString(string(m[1]))
	if err != nil || len(raw) < 12+16 {
		return fmt.Errorf("%w: malformed Vault transit ciphertext", kms.ErrBadWrapped)
	}
	return nil
}

// UnwrapDataKey asks transit to decrypt the wrapped key under the name and context. Any
// refusal by transit (other context, other key, tampering, a version below the key's minimum
// decryption version) is kms.ErrBadWrapped.
func (s *Store) UnwrapDataKey(ctx context.Context, b kms.Bound, wrapped []byte) (*secret.Bytes, error) {
	name := b.Name()
	rep, err := s.sendWrapped(ctx, "decrypt", "unwrap data key", b, wrapped)
	if err != nil {
		return nil, err
	}
	switch {
	case rep.status == http.StatusNotFound:
		s.forgetKey(name)
		return nil, fmt.Errorf("vault: key %q: %w", name, kms.ErrNotFound)
	case rep.status == http.StatusBadRequest:
		// Transit answers 400 for every ciphertext it will not open; the key was seen to
		// exist, so this is the wrapped key's fault, unless the key has been deleted since.
		s.forgetKey(name)
		if _, err := s.readKey(ctx, name); isNotFound(err) {
			return nil, err
		}
		return nil, fmt.Errorf("vault: unwrap with key %q: %w: %s", name, kms.ErrBadWrapped, rep.message())
	case rep.status >= 400:
		return nil, fmt.Errorf("vault: unwrap with key %q: Vault answered %d %s", name, rep.status, rep.message())
	}
	var out struct {
		Data struct {
			Plaintext []byte `json:"plaintext"`
		} `json:"data"`
	}
	err = json.Unmarshal(rep.body, &out)
	clear(rep.body)
	if err != nil || len(out.Data.Plaintext) != kms.DataKeySize {
		clear(out.Data.Plaintext)
		return nil, fmt.Errorf("vault: unwrap with key %q: %w: not a data key", name, kms.ErrBadWrapped)
	}
	return secret.New(out.Data.Plaintext), nil
}

// sendWrapped sends a wrapped key and its context to transit's op (decrypt or rewrap) of the
// named key, after the checks both share: a well-formed context, a name inside its tenant's
// mount, a transit ciphertext, and a key known to be derived.
func (s *Store) sendWrapped(ctx context.Context, op, what string, b kms.Bound, wrapped []byte) (*reply, error) {
	kctx, err := contextParam(b)
	if err != nil {
		return nil, err
	}
	name := b.Name()
	p, err := s.router.transitPath(name, op)
	if err != nil {
		return nil, err
	}
	if err := parseWrapped(wrapped); err != nil {
		return nil, err
	}
	if err := s.checkDerived(ctx, name); err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]string{"ciphertext": string(wrapped), "context": kctx})
	return s.call(ctx, what+" "+strconv.Quote(name), http.MethodPut, p, nil, body)
}

// RewrapDataKey re-encrypts a wrapped key under the newest version of its key, without the
// data key leaving Vault. Use it after RotateKey, before raising the minimum decryption version.
func (s *Store) RewrapDataKey(ctx context.Context, b kms.Bound, wrapped []byte) ([]byte, error) {
	name := b.Name()
	rep, err := s.sendWrapped(ctx, "rewrap", "rewrap with key", b, wrapped)
	if err != nil {
		return nil, err
	}
	switch {
	case rep.status == http.StatusNotFound:
		return nil, fmt.Errorf("vault: key %q: %w", name, kms.ErrNotFound)
	case rep.status == http.StatusBadRequest:
		return nil, fmt.Errorf("vault: rewrap with key %q: %w: %s", name, kms.ErrBadWrapped, rep.message())
	case rep.status >= 400:
		return nil, fmt.Errorf("vault: rewrap with key %q: Vault answered %d %s", name, rep.status, rep.message())
	}
	var out struct {
		Data struct {
			Ciphertext string `json:"ciphertext"`
		} `json:"data"`
	}
	if err := json.Unmarshal(rep.body, &out); err != nil || parseWrapped([]byte(out.Data.Ciphertext)) != nil {
		return nil, fmt.Errorf("vault: rewrap with key %q: malformed answer", name)
	}
	return []byte(out.Data.Ciphertext), nil
}

// CreateKey creates a derived AES-256-GCM transit key that can be neither exported nor backed up
// in plaintext. An existing key is kms.ErrExists.
func (s *Store) CreateKey(ctx context.Context, name string) error {
	p, err := s.router.transitPath(name, "keys")
	if err != nil {
		return err
	}
	if _, err := s.readKey(ctx, name); err == nil {
		return fmt.Errorf("vault: key %q: %w", name, kms.ErrExists)
	} else if !isNotFound(err) {
		return err
	} else if err := s.checkShredded(ctx, name, nil); err != nil {
		return err // a shredded name is not reused (shred.go)
	}
	body, _ := json.Marshal(map[string]any{
		"type": "aes256-gcm96", "derived": true, "exportable": false, "allow_plaintext_backup": false,
	})
	rep, err := s.call(ctx, "create key "+strconv.Quote(name), http.MethodPut, p, nil, body)
	if err != nil {
		return err
	}
	if rep.status >= 400 {
		return fmt.Errorf("vault: create key %q: Vault answered %d %s", name, rep.status, rep.message())
	}
	return nil
}

// RotateKey adds a new version to the key; data keys wrapped under older versions still open
// until SetMinDecryptionVersion says otherwise.
func (s *Store) RotateKey(ctx context.Context, name string) error {
	p, err := s.router.transitPath(name, "keys")
	if err != nil {
		return err
	}
	if _, err := s.readKey(ctx, name); err != nil {
		return err
	}
	rep, err := s.call(ctx, "rotate key "+strconv.Quote(name), http.MethodPut, p+"/rotate", nil, []byte("{}"))
	if err != nil {
		return err
	}
	if rep.status >= 400 {
		return fmt.Errorf("vault: rotate key %q: Vault answered %d %s", name, rep.status, rep.message())
	}
	return nil
}

// SetMinDecryptionVersion makes transit refuse data keys wrapped under versions below v.
func (s *Store) SetMinDecryptionVersion(ctx context.Context, name string, v int) error {
	p, err := s.router.transitPath(name, "keys")
	if err != nil {
		return err
	}
	ki, err := s.readKey(ctx, name)
	if err != nil {
		return err
	}
	if v < 1 || v > ki.Data.LatestVersion {
		return fmt.Errorf("vault: key %q: min decryption version %d outside 1..%d", name, v, ki.Data.LatestVersion)
	}
	body, _ := json.Marshal(map[string]int{"min_decryption_version": v})
	rep, err := s.call(ctx, "configure key "+strconv.Quote(name), http.MethodPut, p+"/config", nil, body)
	if err != nil {
		return err
	}
	if rep.status >= 400 {
		return fmt.Errorf("vault: configure key %q: Vault answered %d %s", name, rep.status, rep.message())
	}
	return nil
}

// Secret values live in KV v2 under the field "value_base64" (written by PutSecret) or "value"
// (text, as an operator writes it with `vault kv put ... value=...`). Exactly one must be there.
const (
	fieldValue    = "value"
	fieldValueB64 = "value_base64"
)

// PutSecret writes a new version of a secret and takes ownership of value.
func (s *Store) PutSecret(ctx context.Context, name string, value *secret.Bytes) (uint64, error) {
	defer value.Wipe()
	p, err := s.router.kvPath(name, "data")
	if err != nil {
		return 0, err
	}
	var in struct {
		Data map[string][]byte `json:"data"`
	}
	in.Data = map[string][]byte{fieldValueB64: value.Reveal()}
	body, err := json.Marshal(in)
	if err != nil {
		return 0, err
	}
	defer clear(body)
	rep, err := s.call(ctx, "put secret "+strconv.Quote(name), http.MethodPut, p, nil, body)
	if err != nil {
		return 0, err
	}
	if rep.status == http.StatusNotFound {
		return 0, fmt.Errorf("vault: put secret %q: %w: no KV v2 mount there", name, kms.ErrNotFound)
	}
	if rep.status >= 400 {
		return 0, fmt.Errorf("vault: put secret %q: Vault answered %d %s", name, rep.status, rep.message())
	}
	var out struct {
		Data struct {
			Version uint64 `json:"version"`
		} `json:"data"`
	}
	if err := json.Unmarshal(rep.body, &out); err != nil || out.Data.Version == 0 {
		return 0, fmt.Errorf("vault: put secret %q: malformed answer", name)
	}
	return out.Data.Version, nil
}

// GetSecret returns the newest version of a secret. A deleted or destroyed newest version is
// kms.ErrNotFound.
func (s *Store) GetSecret(ctx context.Context, name string) (*kms.Secret, error) {
	return s.getSecret(ctx, name, 0)
}

// GetSecretVersion returns one version of a secret.
func (s *Store) GetSecretVersion(ctx context.Context, name string, version uint64) (*kms.Secret, error) {
	if version == 0 {
		return nil, fmt.Errorf("vault: secret %q: version must be at least 1", name)
	}
	return s.getSecret(ctx, name, version)
}

func (s *Store) getSecret(ctx context.Context, name string, version uint64) (*kms.Secret, error) {
	p, err := s.router.kvPath(name, "data")
	if err != nil {
		return nil, err
	}
	var q map[string][]string
	if version > 0 {
		q = map[string][]string{"version": {strconv.FormatUint(version, 10)}}
	}
	rep, err := s.call(ctx, "get secret "+strconv.Quote(name), http.MethodGet, p, q, nil)
	if err != nil {
		return nil, err
	}
	defer clear(rep.body)
	if rep.status == http.StatusNotFound {
		return nil, fmt.Errorf("vault: secret %q: %w", name, kms.ErrNotFound)
	}
	if rep.status >= 400 {
		return nil, fmt.Errorf("vault: get secret %q: Vault answered %d %s", name, rep.status, rep.message())
	}
	var out struct {
		Data struct {
			Data     map[string]json.RawMessage `json:"data"`
			Metadata struct {
				Version      uint64 `json:"version"`
				DeletionTime string `json:"deletion_time"`
				Destroyed    bool   `json:"destroyed"`
			} `json:"metadata"`
		} `json:"data"`
	}
	if err := json.Unmarshal(rep.body, &out); err != nil {
		return nil, fmt.Errorf("vault: get secret %q: malformed answer", name)
	}
	md := out.Data.Metadata
	if out.Data.Data == nil || md.Destroyed || md.DeletionTime != "" {
		return nil, fmt.Errorf("vault: secret %q: %w (deleted)", name, kms.ErrNotFound)
	}
	b64, hasB64 := out.Data.Data[fieldValueB64]
	txt, hasTxt := out.Data.Data[fieldValue]
	var val []byte
	switch {
	case hasB64 && !hasTxt:
		err = json.Unmarshal(b64, &val)
		clear(b64)
	case hasTxt && !hasB64:
		var str string
		err = json.Unmarshal(txt, &str)
		val = []byte(str)
		clear(txt)
	default:
		return nil, fmt.Errorf("vault: secret %q: want exactly one of the fields %q and %q", name, fieldValue, fieldValueB64)
	}
	if err != nil {
		return nil, fmt.Errorf("vault: secret %q: field is not a string", name)
	}
	if md.Version == 0 {
		clear(val)
		return nil, fmt.Errorf("vault: get secret %q: answer without a version", name)
	}
	return &kms.Secret{Value: secret.New(val), Version: md.Version}, nil
}

func isNotFound(err error) bool    { return errors.Is(err, kms.ErrNotFound) }
func isUnavailable(err error) bool { return errors.Is(err, kms.ErrUnavailable) }

// Health reports whether Vault answers and accepts the store's token, by looking the token up
// (auth/token/lookup-self): it releases nothing and needs no policy beyond the default.
func (s *Store) Health(ctx context.Context) error {
	rep, err := s.call(ctx, "health", http.MethodGet, "auth/token/lookup-self", nil, nil)
	if err != nil {
		return err
	}
	if rep.status >= 400 {
		return fmt.Errorf("vault: health: %w: Vault answered %d %s", kms.ErrUnavailable, rep.status, rep.message())
	}
	return nil
}
