//go:build cgo

// Package pkcs11 is the kms backend on a hardware security module reached over PKCS#11: a
// hospital's own HSM, or SoftHSM2 in tests.
//
// Each named key is a set of AES-256 key-encryption keys in the token, one per version, created
// inside the token with CKA_SENSITIVE=true and CKA_EXTRACTABLE=false: the key material never
// leaves the HSM. A data key is 32 random bytes encrypted inside the token with CKM_AES_GCM under
// the newest version, with the key's name, the version and the SHA-256 of the kms.Context as
// associated data, so a wrapped key opens only under its own name and context. The store checks
// every key it uses is still sensitive and non-extractable and refuses it otherwise.
//
// Rotation adds a version; a minimum decryption version (kept in a data object in the token)
// refuses keys wrapped under older versions. Secrets are token data objects, one per version,
// encrypted under a store-wide key-encryption key of the same kind. Operators disable a key with
// their HSM's tools by clearing CKA_ENCRYPT and CKA_DECRYPT; the token then refuses it and so
// does the store.
//
// The PIN comes from a file or an environment variable, read at every login; never from the
// configuration or the command line. The store keeps a small pool of logged-in sessions and,
// when the token goes away (removed, reset, logged out), drops them and logs in again on the
// next call. Errors wrap kms.ErrUnavailable (token or module gone), kms.ErrDenied (PIN refused,
// key disabled or extractable), kms.ErrNotFound and kms.ErrBadWrapped: it fails closed.
//
// The library is github.com/miekg/pkcs11: a thin binding of the C API, which lets the store set
// and check every attribute of its objects itself and use the token's own AES-GCM.
package pkcs11

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	p11 "github.com/miekg/pkcs11"

	"github.com/medicus-cloud/trust/internal/keyfile"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/secret"
)

// Store is a kms.KeyStore and kms.Admin in one PKCS#11 token. It is safe for concurrent use.
type Store struct {
	cfg    Config
	opts   Options
	mod    *module
	prefix string

	sem chan struct{} // bounds sessions in use

	mu         sync.Mutex
	gen        uint64 // bumped whenever the sessions are dropped
	mgen       uint64 // the module generation slot and login belong to
	slot       uint
	haveSlot   bool
	loggedIn   bool
	free       []session
	refused    bool // the token refused the PIN whose digest is refusedPIN
	refusedPIN [32]byte

	writeMu sync.Mutex // one admin write at a time in this process
	closed  atomic.Bool
}

var (
	_ kms.KeyStore = (*Store)(nil)
	_ kms.Admin    = (*Store)(nil)
)

// Wrapped and stored formats.
const (
	wrappedMagic = "mtp1" // || version (uint32) || GCM IV (12) || ciphertext and tag (48)
	secretMagic  = "mts1" // || GCM IV (12) || ciphertext and tag
	ivSize       = 12
	tagBits      = 128
	wrappedSize  = len(wrappedMagic) + 4 + ivSize + kms.DataKeySize + tagBits/8
	// maxSecret bounds a secret value.
	maxSecret = 64 << 10
)

// New loads the module, finds the token and logs in. A token that is absent is not an error:
// the store fails every call with kms.ErrUnavailable until it appears. A refused PIN, a module
// that does not load and bad configuration are errors. Call Close when done.
func New(ctx context.Context, cfg Config, opts Options) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pkcs11 config: %w", err)
	}
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.ReadFile == nil {
		opts.ReadFile = func(path string) ([]byte, error) { return keyfile.Read(path, "pin_file") }
	}
	if cfg.LabelPrefix == "" {
		cfg.LabelPrefix = DefaultLabelPrefix
	}
	if cfg.Sessions == 0 {
		cfg.Sessions = 4
	}
	mod, err := openModule(cfg.Module)
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, opts: opts, mod: mod, prefix: cfg.LabelPrefix, sem: make(chan struct{}, cfg.Sessions), mgen: mod.gen.Load()}
	err = s.do(ctx, "log in", func(p11.SessionHandle) error { return nil })
	if err != nil && !errors.Is(err, kms.ErrUnavailable) {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close logs out and closes the store's sessions, and unloads the module when no other store
// uses it.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.mod.rw.RLock()
	s.mu.Lock()
	s.dropLocked()
	s.mu.Unlock()
	s.mod.rw.RUnlock()
	s.mod.release()
	return nil
}

// Health reports whether the token is present and the store logged in.
func (s *Store) Health(ctx context.Context) error {
	return s.do(ctx, "health", func(sh p11.SessionHandle) error {
		if _, err := s.mod.ctx.GetTokenInfo(s.currentSlot()); err != nil {
			return fmt.Errorf("%w: %v", errNoToken, err)
		}
		info, err := s.mod.ctx.GetSessionInfo(sh)
		if err != nil {
			return err
		}
		if info.State != p11.CKS_RW_USER_FUNCTIONS && info.State != p11.CKS_RO_USER_FUNCTIONS {
			return p11.Error(p11.CKR_USER_NOT_LOGGED_IN)
		}
		return nil
	})
}

// module is one loaded PKCS#11 library. A library may be initialized only once per process, so
// stores on the same module share it. Every call into the library holds rw for reading;
// reinitializing it (to find a token that was removed and put back) holds it for writing.
type module struct {
	path string
	ctx  *p11.Ctx
	refs int // guarded by modules

	rw       sync.RWMutex
	gen      atomic.Uint64 // bumped at every reinitialization: older session handles are void
	lastInit time.Time     // guarded by rw (write)
}

// reinitInterval bounds how often a module is reinitialized while a token stays away.
const reinitInterval = time.Second

var modules = struct {
	sync.Mutex
	m map[string]*module
}{m: map[string]*module{}}

func openModule(path string) (*module, error) {
	modules.Lock()
	defer modules.Unlock()
	if m := modules.m[path]; m != nil {
		m.refs++
		return m, nil
	}
	c := p11.New(path)
	if c == nil {
		return nil, fmt.Errorf("pkcs11: module %s does not load", path)
	}
	if err := c.Initialize(); err != nil && !isCode(err, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		c.Destroy()
		return nil, fmt.Errorf("pkcs11: initialize %s: %w", path, err)
	}
	m := &module{path: path, ctx: c, refs: 1, lastInit: time.Now()}
	modules.m[path] = m
	return m, nil
}

func (m *module) release() {
	modules.Lock()
	defer modules.Unlock()
	if m.refs--; m.refs > 0 {
		return
	}
	delete(modules.m, m.path)
	m.rw.Lock()
	defer m.rw.Unlock()
	_ = m.ctx.Finalize()
	m.ctx.Destroy()
}

// reinit finalizes and initializes the library again, so that it enumerates its tokens anew:
// many modules (SoftHSM2 among them) see a token put back only then. It voids every session of
// every store on the module; they notice and log in again.
func (m *module) reinit(seen uint64) {
	m.rw.Lock()
	defer m.rw.Unlock()
	if m.gen.Load() != seen || time.Since(m.lastInit) < reinitInterval {
		return
	}
	_ = m.ctx.Finalize()
	_ = m.ctx.Initialize()
	m.lastInit = time.Now()
	m.gen.Add(1)
}

func isCode(err error, code uint) bool {
	var e p11.Error
	return errors.As(err, &e) && uint(e) == code
}

// broken reports errors after which the store's sessions are of no more use: the token went
// away, the session or the login did.
func broken(err error) bool {
	if errors.Is(err, errNoToken) {
		return true
	}
	var e p11.Error
	if !errors.As(err, &e) {
		return false
	}
	switch uint(e) {
	case p11.CKR_SESSION_HANDLE_INVALID, p11.CKR_SESSION_CLOSED, p11.CKR_DEVICE_REMOVED,
		p11.CKR_TOKEN_NOT_PRESENT, p11.CKR_TOKEN_NOT_RECOGNIZED, p11.CKR_DEVICE_ERROR,
		p11.CKR_USER_NOT_LOGGED_IN, p11.CKR_SLOT_ID_INVALID, p11.CKR_CRYPTOKI_NOT_INITIALIZED,
		p11.CKR_GENERAL_ERROR, p11.CKR_OBJECT_HANDLE_INVALID, p11.CKR_KEY_HANDLE_INVALID:
		return true
	}
	return false
}

var errNoToken = errors.New("token not present")

// classify turns a PKCS#11 failure into one of kms's errors. op names what was attempted;
// PKCS#11 return codes name no key material, so they may be shown.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, errNoToken) {
		return fmt.Errorf("pkcs11: %s: %w: %v", op, kms.ErrUnavailable, err)
	}
	for _, sentinel := range []error{kms.ErrUnavailable, kms.ErrDenied, kms.ErrNotFound, kms.ErrBadWrapped, kms.ErrExists, kms.ErrInvalidName, kms.ErrBadContext} {
		if errors.Is(err, sentinel) {
			if strings.HasPrefix(err.Error(), "pkcs11: ") {
				return err
			}
			return fmt.Errorf("pkcs11: %w", err)
		}
	}
	var e p11.Error
	if errors.As(err, &e) {
		switch uint(e) {
		case p11.CKR_PIN_INCORRECT, p11.CKR_PIN_INVALID, p11.CKR_PIN_LEN_RANGE, p11.CKR_PIN_EXPIRED, p11.CKR_PIN_LOCKED:
			return fmt.Errorf("pkcs11: %s: %w: the token refused the PIN (%v)", op, kms.ErrDenied, e)
		case p11.CKR_KEY_FUNCTION_NOT_PERMITTED:
			return fmt.Errorf("pkcs11: %s: %w: the key is disabled in the HSM (%v)", op, kms.ErrDenied, e)
		case p11.CKR_ENCRYPTED_DATA_INVALID, p11.CKR_ENCRYPTED_DATA_LEN_RANGE:
			return fmt.Errorf("pkcs11: %s: %w (%v)", op, kms.ErrBadWrapped, e)
		}
	}
	return fmt.Errorf("pkcs11: %s: %w: %v", op, kms.ErrUnavailable, err)
}

// session is one open session of the store.
type session struct {
	h    p11.SessionHandle
	gen  uint64 // the store's generation when opened
	mgen uint64 // the module's generation when opened
}

// do runs f on a logged-in session. When the session turns out broken (the token was removed
// and put back, or logged out), it logs in again once and retries; when the token cannot be
// found it has the module enumerate its tokens again, at most once a second.
func (s *Store) do(ctx context.Context, op string, f func(sh p11.SessionHandle) error) error {
	if s.closed.Load() {
		return fmt.Errorf("pkcs11: %s: %w: store closed", op, kms.ErrUnavailable)
	}
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		mgen := s.mod.gen.Load()
		err = s.attempt(ctx, f)
		if err == nil || !broken(err) {
			break
		}
		if errors.Is(err, errNoToken) {
			s.mod.reinit(mgen)
		}
	}
	return classify(op, err)
}

func (s *Store) attempt(ctx context.Context, f func(sh p11.SessionHandle) error) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", kms.ErrUnavailable, ctx.Err())
	}
	defer func() { <-s.sem }()
	s.mod.rw.RLock()
	defer s.mod.rw.RUnlock()
	sess, err := s.acquire()
	if err != nil {
		return err
	}
	err = f(sess.h)
	if errors.Is(err, kms.ErrNotFound) {
		// An absent token can look empty: a key is missing only if the token is there.
		if _, terr := s.mod.ctx.GetTokenInfo(s.currentSlot()); terr != nil {
			err = fmt.Errorf("%w: %v", errNoToken, terr)
		}
	}
	s.release(sess, err)
	return err
}

// currentSlot is the token's slot, as found at the last login.
func (s *Store) currentSlot() uint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slot
}

// acquire returns a free session or opens one. Callers hold s.mod.rw for reading.
func (s *Store) acquire() (session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mgen := s.mod.gen.Load()
	if s.mgen != mgen {
		// The module was reinitialized: every handle we held is void, and so is the login.
		s.free, s.haveSlot, s.loggedIn, s.mgen = nil, false, false, mgen
		s.gen++
	}
	if n := len(s.free); n > 0 {
		sess := s.free[n-1]
		s.free = s.free[:n-1]
		return sess, nil
	}
	h, err := s.openLocked()
	if err != nil {
		if broken(err) {
			s.dropLocked()
		}
		return session{}, err
	}
	return session{h: h, gen: s.gen, mgen: mgen}, nil
}

// openLocked opens a session on the token, logging in when this is the first one.
func (s *Store) openLocked() (p11.SessionHandle, error) {
	c := s.mod.ctx
	if !s.haveSlot {
		slots, err := c.GetSlotList(true)
		if err != nil {
			return 0, err
		}
		found := false
		for _, id := range slots {
			ti, err := c.GetTokenInfo(id)
			if err == nil && strings.TrimRight(ti.Label, " \x00") == s.cfg.Token {
				s.slot, found = id, true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("%w: no token labelled %q", errNoToken, s.cfg.Token)
		}
		s.haveSlot = true
	}
	sh, err := c.OpenSession(s.slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		return 0, err
	}
	if !s.loggedIn {
		if err := s.login(sh); err != nil {
			c.CloseSession(sh)
			return 0, err
		}
		s.loggedIn = true
	}
	return sh, nil
}

// login logs in with the configured PIN. A PIN the token refused is not offered again until it
// changes: real HSMs lock the token after a few wrong PINs.
func (s *Store) login(sh p11.SessionHandle) error {
	pin, err := s.pin()
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(pin))
	if s.refused && subtle.ConstantTimeCompare(sum[:], s.refusedPIN[:]) == 1 {
		return p11.Error(p11.CKR_PIN_INCORRECT)
	}
	err = s.mod.ctx.Login(sh, p11.CKU_USER, pin)
	switch {
	case err == nil, isCode(err, p11.CKR_USER_ALREADY_LOGGED_IN):
		s.refused = false
		return nil
	case isCode(err, p11.CKR_PIN_INCORRECT), isCode(err, p11.CKR_PIN_LOCKED), isCode(err, p11.CKR_PIN_EXPIRED):
		s.refused, s.refusedPIN = true, sum
	}
	return err
}

func (s *Store) release(sess session, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case sess.mgen != s.mod.gen.Load():
		// The module was reinitialized meanwhile: the handle may now be another store's.
	case sess.gen != s.gen:
		_ = s.mod.ctx.CloseSession(sess.h) // dropped while in use
	case broken(err):
		_ = s.mod.ctx.CloseSession(sess.h)
		s.dropLocked()
	default:
		s.free = append(s.free, sess)
	}
}

// dropLocked closes the store's idle sessions and forgets slot and login; sessions in use are
// closed when released. Other stores on the same token keep theirs.
func (s *Store) dropLocked() {
	if s.mgen == s.mod.gen.Load() {
		for _, sess := range s.free {
			_ = s.mod.ctx.CloseSession(sess.h)
		}
	}
	s.free, s.haveSlot, s.loggedIn = nil, false, false
	s.gen++
}

func (s *Store) pin() (string, error) {
	var v string
	if s.cfg.PINFile != "" {
		b, err := s.opts.ReadFile(s.cfg.PINFile)
		if err != nil {
			return "", fmt.Errorf("%w: pin_file: %v", kms.ErrDenied, err)
		}
		v = strings.TrimSpace(string(b))
		clear(b)
	} else {
		var ok bool
		if v, ok = s.opts.LookupEnv(s.cfg.PINEnv); !ok {
			return "", fmt.Errorf("%w: pin_env: %s is not set", kms.ErrDenied, s.cfg.PINEnv)
		}
		v = strings.TrimSpace(v)
	}
	if v == "" {
		return "", fmt.Errorf("%w: the PIN is empty", kms.ErrDenied)
	}
	return v, nil
}

// Object naming in the token.
func (s *Store) keyID(name string) []byte { return []byte(s.prefix + "/key/" + name) }
func (s *Store) metaApp() string          { return s.prefix + "/key-meta" }
func (s *Store) secretApp(n string) string {
	return s.prefix + "/secret/" + n
}

const secretsKEK = ".secrets" // not a valid kms name, so no key can collide with it

type keyVersion struct {
	v uint32
	h p11.ObjectHandle
}

func (s *Store) find(sh p11.SessionHandle, tmpl []*p11.Attribute) ([]p11.ObjectHandle, error) {
	c := s.mod.ctx
	if err := c.FindObjectsInit(sh, tmpl); err != nil {
		return nil, err
	}
	var out []p11.ObjectHandle
	for {
		hs, _, err := c.FindObjects(sh, 64)
		if err != nil {
			c.FindObjectsFinal(sh)
			return nil, err
		}
		if len(hs) == 0 {
			break
		}
		out = append(out, hs...)
		if len(out) > 1<<16 {
			c.FindObjectsFinal(sh)
			return nil, errors.New("too many objects")
		}
	}
	return out, c.FindObjectsFinal(sh)
}

// versions lists a key's versions, oldest first, and checks each still keeps its material in
// the token. A key with no versions is kms.ErrNotFound.
func (s *Store) versions(sh p11.SessionHandle, name string) ([]keyVersion, error) {
	id := s.keyID(name)
	hs, err := s.find(sh, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_ID, id),
	})
	if err != nil {
		return nil, err
	}
	var out []keyVersion
	for _, h := range hs {
		attrs, err := s.mod.ctx.GetAttributeValue(sh, h, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_LABEL, nil),
			p11.NewAttribute(p11.CKA_SENSITIVE, nil),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, nil),
			p11.NewAttribute(p11.CKA_KEY_TYPE, nil),
		})
		if err != nil {
			return nil, err
		}
		label := string(attrs[0].Value)
		rest, ok := strings.CutPrefix(label, string(id)+"#")
		v, perr := strconv.ParseUint(rest, 10, 32)
		if !ok || perr != nil || v == 0 {
			continue // not one of ours
		}
		if !boolAttr(attrs[1]) || boolAttr(attrs[2]) || !bytes.Equal(attrs[3].Value, ulong(p11.CKK_AES)) {
			return nil, fmt.Errorf("key %q version %d: %w: it must be a sensitive, non-extractable AES key", name, v, kms.ErrDenied)
		}
		out = append(out, keyVersion{v: uint32(v), h: h})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("key %q: %w", name, kms.ErrNotFound)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].v < out[j].v })
	for i, kv := range out {
		if kv.v != uint32(i+1) {
			return nil, fmt.Errorf("key %q: %w: versions are not 1..%d (duplicate or missing version in the token)", name, kms.ErrDenied, len(out))
		}
	}
	return out, nil
}

func boolAttr(a *p11.Attribute) bool { return len(a.Value) == 1 && a.Value[0] != 0 }

// ulong encodes a CK_ULONG as the module reads it.
func ulong(v uint) []byte { return p11.NewAttribute(p11.CKA_KEY_TYPE, v).Value }

type keyMeta struct {
	MinDecryptionVersion uint32 `json:"min_decryption_version"`
}

// metaObjects returns a key's metadata objects and what they say. Data objects cannot be
// changed in place in every token, so a new setting is a new object and the old ones are then
// destroyed; should a reader see both, the higher minimum decryption version counts.
func (s *Store) metaObjects(sh p11.SessionHandle, name string) ([]p11.ObjectHandle, *keyMeta, error) {
	hs, err := s.find(sh, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_DATA),
		p11.NewAttribute(p11.CKA_APPLICATION, s.metaApp()),
		p11.NewAttribute(p11.CKA_LABEL, name),
	})
	if err != nil {
		return nil, nil, err
	}
	out := &keyMeta{MinDecryptionVersion: 1}
	for _, h := range hs {
		attrs, err := s.mod.ctx.GetAttributeValue(sh, h, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)})
		if err != nil {
			return nil, nil, err
		}
		var m keyMeta
		if err := json.Unmarshal(attrs[0].Value, &m); err != nil || m.MinDecryptionVersion < 1 {
			return nil, nil, fmt.Errorf("key %q: %w: unreadable metadata in the token", name, kms.ErrDenied)
		}
		out.MinDecryptionVersion = max(out.MinDecryptionVersion, m.MinDecryptionVersion)
	}
	return hs, out, nil
}

func (s *Store) generateVersion(sh p11.SessionHandle, name string, v uint32) error {
	id := s.keyID(name)
	_, err := s.mod.ctx.GenerateKey(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
		p11.NewAttribute(p11.CKA_VALUE_LEN, 32),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
		p11.NewAttribute(p11.CKA_ENCRYPT, true),
		p11.NewAttribute(p11.CKA_DECRYPT, true),
		p11.NewAttribute(p11.CKA_WRAP, false),
		p11.NewAttribute(p11.CKA_UNWRAP, false),
		p11.NewAttribute(p11.CKA_SIGN, false),
		p11.NewAttribute(p11.CKA_VERIFY, false),
		p11.NewAttribute(p11.CKA_DERIVE, false),
		p11.NewAttribute(p11.CKA_ID, id),
		p11.NewAttribute(p11.CKA_LABEL, string(id)+"#"+strconv.FormatUint(uint64(v), 10)),
	})
	return err
}

func (s *Store) seal(sh p11.SessionHandle, key p11.ObjectHandle, plain, aad []byte) (iv, ct []byte, err error) {
	iv = make([]byte, ivSize)
	if _, err := rand.Read(iv); err != nil {
		return nil, nil, err
	}
	params := p11.NewGCMParams(iv, aad, tagBits)
	defer params.Free()
	if err := s.mod.ctx.EncryptInit(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}, key); err != nil {
		return nil, nil, err
	}
	ct, err = s.mod.ctx.Encrypt(sh, plain)
	if err != nil {
		return nil, nil, err
	}
	if len(ct) != len(plain)+tagBits/8 {
		return nil, nil, fmt.Errorf("%w: the token returned %d bytes of AES-GCM output for %d bytes", kms.ErrUnavailable, len(ct), len(plain))
	}
	return iv, ct, nil
}

func (s *Store) open(sh p11.SessionHandle, key p11.ObjectHandle, iv, ct, aad []byte) ([]byte, error) {
	params := p11.NewGCMParams(iv, aad, tagBits)
	defer params.Free()
	if err := s.mod.ctx.DecryptInit(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}, key); err != nil {
		return nil, err
	}
	return s.mod.ctx.Decrypt(sh, ct)
}

func wrapAAD(name string, v uint32, digest []byte) []byte {
	b := binary.BigEndian.AppendUint32([]byte(wrappedMagic), v)
	b = binary.BigEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	return append(b, digest...)
}

// GenerateDataKey makes a random data key and encrypts it inside the token under the newest
// version of the named key and the context.
func (s *Store) GenerateDataKey(ctx context.Context, b kms.Bound) (*kms.DataKey, error) {
	if err := b.Check(); err != nil {
		return nil, err
	}
	name, digest := b.Name(), b.Digest()
	dek := make([]byte, kms.DataKeySize)
	if _, err := rand.Read(dek); err != nil {
		return nil, err
	}
	var out []byte
	err := s.do(ctx, "generate data key "+strconv.Quote(name), func(sh p11.SessionHandle) error {
		vs, err := s.versions(sh, name)
		if err != nil {
			return err
		}
		latest := vs[len(vs)-1]
		iv, ct, err := s.seal(sh, latest.h, dek, wrapAAD(name, latest.v, digest))
		if err != nil {
			return err
		}
		out = binary.BigEndian.AppendUint32([]byte(wrappedMagic), latest.v)
		out = append(append(out, iv...), ct...)
		return nil
	})
	if err != nil {
		clear(dek)
		return nil, err
	}
	return &kms.DataKey{Plaintext: secret.New(dek), Wrapped: out}, nil
}

// UnwrapDataKey decrypts a wrapped key inside the token. It fails unless name and context are
// the ones it was wrapped under and its version is at least the minimum decryption version.
func (s *Store) UnwrapDataKey(ctx context.Context, b kms.Bound, wrapped []byte) (*secret.Bytes, error) {
	if err := b.Check(); err != nil {
		return nil, err
	}
	name, digest := b.Name(), b.Digest()
	if len(wrapped) != wrappedSize || string(wrapped[:4]) != wrappedMagic {
		return nil, fmt.Errorf("%w: not a PKCS#11 wrapped key", kms.ErrBadWrapped)
	}
	v := binary.BigEndian.Uint32(wrapped[4:8])
	iv, ct := wrapped[8:8+ivSize], wrapped[8+ivSize:]
	var dek []byte
	err := s.do(ctx, "unwrap data key "+strconv.Quote(name), func(sh p11.SessionHandle) error {
		vs, err := s.versions(sh, name)
		if err != nil {
			return err
		}
		if v < 1 || int(v) > len(vs) {
			return fmt.Errorf("%w: key version %d unknown", kms.ErrBadWrapped, v)
		}
		_, meta, err := s.metaObjects(sh, name)
		if err != nil {
			return err
		}
		if v < meta.MinDecryptionVersion {
			return fmt.Errorf("%w: key version %d is below the minimum decryption version %d", kms.ErrBadWrapped, v, meta.MinDecryptionVersion)
		}
		dek, err = s.open(sh, vs[v-1].h, iv, ct, wrapAAD(name, v, digest))
		if isCode(err, p11.CKR_ENCRYPTED_DATA_INVALID) || isCode(err, p11.CKR_GENERAL_ERROR) {
			// SoftHSM answers a failed tag check with CKR_GENERAL_ERROR; so might a token
			// that just went away, which must not pass for a bad wrapped key.
			if _, terr := s.mod.ctx.GetTokenInfo(s.currentSlot()); terr != nil {
				return fmt.Errorf("%w: %v", errNoToken, terr)
			}
			return fmt.Errorf("%w: does not open under key %q and this context", kms.ErrBadWrapped, name)
		}
		return err
	})
	if err != nil {
		clear(dek)
		return nil, err
	}
	if len(dek) != kms.DataKeySize {
		clear(dek)
		return nil, fmt.Errorf("pkcs11: %w: not a data key", kms.ErrBadWrapped)
	}
	return secret.New(dek), nil
}

// CreateKey creates version 1 of a key inside the token. An existing key is kms.ErrExists.
func (s *Store) CreateKey(ctx context.Context, name string) error {
	if err := kms.CheckName(name); err != nil {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.do(ctx, "create key "+strconv.Quote(name), func(sh p11.SessionHandle) error {
		if _, err := s.versions(sh, name); err == nil {
			return fmt.Errorf("key %q: %w", name, kms.ErrExists)
		} else if !errors.Is(err, kms.ErrNotFound) {
			return err
		}
		return s.generateVersion(sh, name, 1)
	})
}

// RotateKey adds a version inside the token; new data keys are wrapped under it, older ones
// still open until SetMinDecryptionVersion says otherwise.
func (s *Store) RotateKey(ctx context.Context, name string) error {
	if err := kms.CheckName(name); err != nil {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.do(ctx, "rotate key "+strconv.Quote(name), func(sh p11.SessionHandle) error {
		vs, err := s.versions(sh, name)
		if err != nil {
			return err
		}
		return s.generateVersion(sh, name, vs[len(vs)-1].v+1)
	})
}

// SetMinDecryptionVersion refuses data keys wrapped under versions below v.
func (s *Store) SetMinDecryptionVersion(ctx context.Context, name string, v uint32) error {
	if err := kms.CheckName(name); err != nil {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.do(ctx, "set min decryption version of "+strconv.Quote(name), func(sh p11.SessionHandle) error {
		vs, err := s.versions(sh, name)
		if err != nil {
			return err
		}
		if v < 1 || int(v) > len(vs) {
			return fmt.Errorf("key %q: min decryption version %d outside 1..%d", name, v, len(vs))
		}
		old, _, err := s.metaObjects(sh, name)
		if err != nil {
			return err
		}
		val, _ := json.Marshal(keyMeta{MinDecryptionVersion: v})
		if _, err := s.mod.ctx.CreateObject(sh, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_DATA),
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_PRIVATE, true),
			p11.NewAttribute(p11.CKA_MODIFIABLE, true),
			p11.NewAttribute(p11.CKA_APPLICATION, s.metaApp()),
			p11.NewAttribute(p11.CKA_LABEL, name),
			p11.NewAttribute(p11.CKA_VALUE, val),
		}); err != nil {
			return err
		}
		for _, h := range old {
			if err := s.mod.ctx.DestroyObject(sh, h); err != nil {
				return err
			}
		}
		return nil
	})
}

type secretVersion struct {
	v uint64
	h p11.ObjectHandle
}

func (s *Store) secretVersions(sh p11.SessionHandle, name string) ([]secretVersion, error) {
	hs, err := s.find(sh, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_DATA),
		p11.NewAttribute(p11.CKA_APPLICATION, s.secretApp(name)),
	})
	if err != nil {
		return nil, err
	}
	var out []secretVersion
	for _, h := range hs {
		attrs, err := s.mod.ctx.GetAttributeValue(sh, h, []*p11.Attribute{p11.NewAttribute(p11.CKA_LABEL, nil)})
		if err != nil {
			return nil, err
		}
		rest, ok := strings.CutPrefix(string(attrs[0].Value), "v")
		v, perr := strconv.ParseUint(rest, 10, 64)
		if ok && perr == nil && v > 0 {
			out = append(out, secretVersion{v: v, h: h})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].v < out[j].v })
	return out, nil
}

func secretAAD(name string, v uint64) []byte {
	b := binary.BigEndian.AppendUint64([]byte(secretMagic), v)
	return append(b, name...)
}

// secretKEK returns the store's secret-encryption key, creating it on first use.
func (s *Store) secretKEK(sh p11.SessionHandle, create bool) (p11.ObjectHandle, error) {
	vs, err := s.versions(sh, secretsKEK)
	if errors.Is(err, kms.ErrNotFound) && create {
		if err := s.generateVersion(sh, secretsKEK, 1); err != nil {
			return 0, err
		}
		vs, err = s.versions(sh, secretsKEK)
	}
	if err != nil {
		return 0, err
	}
	return vs[0].h, nil
}

// PutSecret stores a new version of a secret, encrypted inside the token, and takes ownership
// of value.
func (s *Store) PutSecret(ctx context.Context, name string, value *secret.Bytes) (uint64, error) {
	if err := kms.CheckName(name); err != nil {
		return 0, err
	}
	if value.Len() > maxSecret {
		return 0, fmt.Errorf("pkcs11: secret %q: %d bytes, at most %d", name, value.Len(), maxSecret)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	var version uint64
	err := s.do(ctx, "put secret "+strconv.Quote(name), func(sh p11.SessionHandle) error {
		kek, err := s.secretKEK(sh, true)
		if err != nil {
			return err
		}
		vs, err := s.secretVersions(sh, name)
		if err != nil {
			return err
		}
		version = 1
		if len(vs) > 0 {
			version = vs[len(vs)-1].v + 1
		}
		iv, ct, err := s.seal(sh, kek, value.Reveal(), secretAAD(name, version))
		if err != nil {
			return err
		}
		_, err = s.mod.ctx.CreateObject(sh, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_DATA),
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_PRIVATE, true),
			p11.NewAttribute(p11.CKA_MODIFIABLE, false),
			p11.NewAttribute(p11.CKA_APPLICATION, s.secretApp(name)),
			p11.NewAttribute(p11.CKA_LABEL, "v"+strconv.FormatUint(version, 10)),
			p11.NewAttribute(p11.CKA_VALUE, append(append([]byte(secretMagic), iv...), ct...)),
		})
		return err
	})
	if err != nil {
		return 0, err
	}
	return version, nil
}

// GetSecret returns the newest version of a secret.
func (s *Store) GetSecret(ctx context.Context, name string) (*kms.Secret, error) {
	if err := kms.CheckName(name); err != nil {
		return nil, err
	}
	var out *kms.Secret
	err := s.do(ctx, "get secret "+strconv.Quote(name), func(sh p11.SessionHandle) error {
		vs, err := s.secretVersions(sh, name)
		if err != nil {
			return err
		}
		if len(vs) == 0 {
			return fmt.Errorf("secret %q: %w", name, kms.ErrNotFound)
		}
		kek, err := s.secretKEK(sh, false)
		if err != nil {
			return err
		}
		last := vs[len(vs)-1]
		attrs, err := s.mod.ctx.GetAttributeValue(sh, last.h, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)})
		if err != nil {
			return err
		}
		blob := attrs[0].Value
		if len(blob) < len(secretMagic)+ivSize+tagBits/8 || string(blob[:4]) != secretMagic {
			return fmt.Errorf("secret %q: %w: malformed object in the token", name, kms.ErrDenied)
		}
		plain, err := s.open(sh, kek, blob[4:4+ivSize], blob[4+ivSize:], secretAAD(name, last.v))
		if err != nil {
			if isCode(err, p11.CKR_GENERAL_ERROR) || isCode(err, p11.CKR_ENCRYPTED_DATA_INVALID) {
				return fmt.Errorf("secret %q: %w: does not decrypt (moved or altered in the token)", name, kms.ErrDenied)
			}
			return err
		}
		out = &kms.Secret{Value: secret.New(plain), Version: last.v}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
