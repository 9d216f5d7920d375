// Package envelope encrypts patient data under data keys released by trustd.
//
// Each object gets a fresh 256-bit data key (DEK) from a KeySource, bound to a kms.Context (tenant,
// case, content type). The DEK, wrapped by the key store, travels in the object's header; only a
// workload that trustd releases the same key name and context to can open it again. For most
// callers:
//
//   - Encrypt and Decrypt for records that fit in memory;
//   - NewWriter and NewReader for streams of any size in constant memory;
//   - NewReaderAt for random access into large objects (imaging), decrypting only what is read.
//
// The KeySource is usually an *sdk.Client. NewCachingKeySource keeps unwrapped keys for a while,
// so that reading many chunks or objects does not call trustd each time.
//
// # Format
//
// An object is a header followed by chunks (64 KiB by default) sealed with AES-256-GCM in the
// STREAM construction: nonce = chunk counter ‖ last-chunk flag. The header names the format
// version, suite, chunk size, key name, wrapped DEK and a random 32-byte salt, and ends with an
// HMAC-SHA256 over all of it and the SHA-256 digest of the context (covered, never stored: a
// stored digest would let whoever holds the objects confirm a guessed case or patient
// identifier; version 1 headers, which stored it, are still read). The MAC key and the chunk key are
// derived from the DEK with HKDF-SHA256 and the salt, so a DEK used for two objects (through a
// cache, say) never repeats a key and nonce pair. The whole header is the associated data of every
// chunk, and the context is bound twice: as the key store's derivation context for the wrapped
// DEK, and through its digest under the header MAC. Truncation, extension, reordering, chunks or headers
// from another object, and the wrong context all fail with an error from the list below, before
// any plaintext of the failing chunk is returned.
//
// Objects written by this version will be readable by later ones; a reader refuses versions and
// suites it does not know (ErrUnsupportedVersion, ErrUnsupportedSuite).
//
// It is not for: passwords or small secrets (use sdk.Client.Secret), deduplication (equal
// plaintexts never give equal ciphertexts), or hiding the size of the data.
package envelope

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/sdk/internal/stream"
	"github.com/medicus-cloud/trust/secret"
)

// KeySource hands out data keys. *sdk.Client implements it by calling trustd; FromKeyStore
// adapts a kms.KeyStore for processes that hold one (trustd itself, tests, local tools).
//
// Each *secret.Bytes returned belongs to the caller, who wipes it after use: an implementation
// that keeps keys (a cache) must return copies.
type KeySource interface {
	// GenerateDataKey returns a fresh 256-bit key and the same key wrapped under keyName and kc.
	GenerateDataKey(ctx context.Context, keyName string, kc kms.Context) (dek *secret.Bytes, wrapped []byte, err error)
	// UnwrapDataKey opens a wrapped key; it fails unless keyName and kc are the ones it was
	// wrapped under.
	UnwrapDataKey(ctx context.Context, keyName string, wrapped []byte, kc kms.Context) (*secret.Bytes, error)
}

// Errors, matched with errors.Is. Errors from the KeySource (denials, an unreachable trustd) are
// wrapped as they come and match their own sentinels.
var (
	// ErrNotEnvelope: the input does not start like an envelope at all.
	ErrNotEnvelope = errors.New("envelope: not an encrypted envelope")
	// ErrUnsupportedVersion: a format version this SDK does not read.
	ErrUnsupportedVersion = errors.New("envelope: unsupported format version")
	// ErrUnsupportedSuite: a cipher suite this SDK does not read.
	ErrUnsupportedSuite = errors.New("envelope: unsupported cipher suite")
	// ErrMalformedHeader: a header field is out of range or cut short.
	ErrMalformedHeader = errors.New("envelope: malformed header")
	// ErrWrongContext: the caller's context is not the one the object was sealed under. A
	// version 1 header stores the context's digest, and the check comes before any call. A
	// version 2 header stores nothing of the context: ErrWrongContext then wraps the key
	// store's refusal to unwrap (kms.ErrBadWrapped, which an altered wrapped key gives too) and,
	// with a key source that does not bind contexts, the MAC refuses it (ErrHeaderAuth).
	ErrWrongContext = errors.New("envelope: object was sealed under another context")
	// ErrHeaderAuth: the header does not authenticate under its data key.
	ErrHeaderAuth = errors.New("envelope: header failed authentication")
	// ErrChunkAuth: a chunk was modified, moved, or comes from another object.
	ErrChunkAuth = stream.ErrChunkAuth
	// ErrTruncated: the object ends before its final chunk.
	ErrTruncated = stream.ErrTruncated
	// ErrTrailingData: data follows the final chunk.
	ErrTrailingData = stream.ErrTrailingData
)

// Options tune how objects are written. The zero value is the recommended setting.
type Options struct {
	// ChunkSize is the plaintext size of each chunk, MinChunkSize..MaxChunkSize; zero means
	// DefaultChunkSize. Readers take it from the header.
	ChunkSize int
}

const (
	macLabel     = "medicus-trust/v1 envelope header"
	payloadLabel = "medicus-trust/v1 envelope payload"
)

// keys derives the header MAC key and the payload AEAD from the DEK and the object's salt.
func keys(dek *secret.Bytes, salt []byte) (macKey []byte, aead cipher.AEAD, err error) {
	if dek.Len() != kms.DataKeySize {
		return nil, nil, fmt.Errorf("envelope: key source returned a %d-byte data key, want %d", dek.Len(), kms.DataKeySize)
	}
	macKey, err = hkdf.Key(sha256.New, dek.Reveal(), salt, macLabel, 32)
	if err != nil {
		return nil, nil, err
	}
	pk, err := hkdf.Key(sha256.New, dek.Reveal(), salt, payloadLabel, 32)
	if err != nil {
		return nil, nil, err
	}
	defer clear(pk)
	block, err := aes.NewCipher(pk)
	if err != nil {
		return nil, nil, err
	}
	aead, err = cipher.NewGCM(block)
	return macKey, aead, err
}

// seal gets a new DEK and returns the payload AEAD, the encoded header and the chunk size.
func seal(ctx context.Context, ks KeySource, keyName string, kc kms.Context, o *Options) (cipher.AEAD, []byte, int, error) {
	cs := DefaultChunkSize
	if o != nil && o.ChunkSize != 0 {
		cs = o.ChunkSize
	}
	if err := kms.CheckName(keyName); err != nil {
		return nil, nil, 0, fmt.Errorf("envelope: %w", err)
	}
	digest, err := kc.Digest()
	if err != nil {
		return nil, nil, 0, fmt.Errorf("envelope: %w", err)
	}
	h := &header{version: formatVersion, chunkSize: cs, keyName: keyName, digest: digest, salt: make([]byte, saltSize)}
	if cs < MinChunkSize || cs > MaxChunkSize {
		return nil, nil, 0, fmt.Errorf("envelope: chunk size %d outside %d..%d", cs, MinChunkSize, MaxChunkSize)
	}
	if _, err := rand.Read(h.salt); err != nil {
		return nil, nil, 0, err
	}
	dek, wrapped, err := ks.GenerateDataKey(ctx, keyName, kc)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("envelope: generating a data key under %q: %w", keyName, err)
	}
	defer dek.Wipe()
	h.wrapped = wrapped
	if err := h.check(); err != nil {
		return nil, nil, 0, err
	}
	macKey, aead, err := keys(dek, h.salt)
	if err != nil {
		return nil, nil, 0, err
	}
	defer clear(macKey)
	return aead, h.sign(macKey), cs, nil
}

// open checks the context, unwraps the DEK, authenticates the header and returns the payload
// AEAD.
func open(ctx context.Context, ks KeySource, kc kms.Context, h *header) (cipher.AEAD, error) {
	digest, err := kc.Digest()
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	switch h.version {
	case formatV1:
		if subtle.ConstantTimeCompare(digest, h.digest) != 1 {
			return nil, ErrWrongContext
		}
	default:
		// Bound by the MAC, not stored: another context fails the unwrap (the key store binds
		// the wrapped key to it) or, failing that, the MAC.
		h.digest = digest
	}
	dek, err := ks.UnwrapDataKey(ctx, h.keyName, h.wrapped, kc)
	if err != nil {
		if h.version != formatV1 && errors.Is(err, kms.ErrBadWrapped) {
			// The key store binds the wrapped key to the context: its refusal is how a version
			// 2 object tells another context (or an altered wrapped key) apart.
			return nil, fmt.Errorf("%w: the key store does not open its data key under %q and this context (or the header's wrapped key was altered): %w", ErrWrongContext, h.keyName, err)
		}
		return nil, fmt.Errorf("envelope: unwrapping the data key under %q: %w", h.keyName, err)
	}
	defer dek.Wipe()
	macKey, aead, err := keys(dek, h.salt)
	if err != nil {
		return nil, err
	}
	defer clear(macKey)
	if err := h.verify(macKey); err != nil {
		return nil, err
	}
	return aead, nil
}

// Encrypt seals plaintext under a new data key for keyName and kc.
func Encrypt(ctx context.Context, ks KeySource, keyName string, kc kms.Context, plaintext []byte) ([]byte, error) {
	return encrypt(ctx, ks, keyName, kc, plaintext, nil)
}

func encrypt(ctx context.Context, ks KeySource, keyName string, kc kms.Context, plaintext []byte, o *Options) ([]byte, error) {
	aead, hdr, cs, err := seal(ctx, ks, keyName, kc, o)
	if err != nil {
		return nil, err
	}
	size, err := stream.EncryptedSize(int64(len(plaintext)), cs)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	out := make([]byte, len(hdr), int64(len(hdr))+size)
	copy(out, hdr)
	for i := uint64(0); ; i++ {
		n := min(cs, len(plaintext))
		last := n == len(plaintext)
		out = stream.Seal(aead, out, plaintext[:n], hdr, i, last)
		plaintext = plaintext[n:]
		if last {
			return out, nil
		}
	}
}

// Decrypt opens an object made by Encrypt or NewWriter. The key name comes from the header; kc
// must be the context it was sealed under.
func Decrypt(ctx context.Context, ks KeySource, kc kms.Context, ciphertext []byte) ([]byte, error) {
	br := bytes.NewReader(ciphertext)
	h, hdr, err := parseHeader(br)
	if err != nil {
		return nil, err
	}
	body := ciphertext[len(hdr):]
	chunks, size, err := stream.Layout(int64(len(body)), h.chunkSize)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	aead, err := open(ctx, ks, kc, h)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, size)
	enc := h.chunkSize + stream.TagSize
	for i := int64(0); i < chunks; i++ {
		ct := body[:min(enc, len(body))]
		body = body[len(ct):]
		out, err = stream.Open(aead, out, ct, hdr, uint64(i), i == chunks-1)
		if err != nil {
			clear(out[:cap(out)])
			return nil, fmt.Errorf("envelope: %w", err)
		}
	}
	return out, nil
}

// NewWriter writes the header of a new object to dst at once and returns a writer that seals
// what is written to it. Close seals the final chunk and must be called; it does not close dst.
// Without Close the object reads as truncated. opts may be nil.
func NewWriter(ctx context.Context, ks KeySource, dst io.Writer, keyName string, kc kms.Context, opts *Options) (io.WriteCloser, error) {
	aead, hdr, cs, err := seal(ctx, ks, keyName, kc, opts)
	if err != nil {
		return nil, err
	}
	if _, err := dst.Write(hdr); err != nil {
		return nil, fmt.Errorf("envelope: writing header: %w", err)
	}
	return stream.NewWriter(aead, hdr, cs, dst), nil
}

// NewReader reads the header from src, unwraps its key, and returns a reader of the plaintext.
// Read returns io.EOF only after the final chunk has been authenticated; any other error means
// the object was damaged or tampered with, and what was read so far must not be trusted as a
// whole. Memory is about two chunks, whatever the size.
func NewReader(ctx context.Context, ks KeySource, src io.Reader, kc kms.Context) (io.Reader, error) {
	h, hdr, err := parseHeader(src)
	if err != nil {
		return nil, err
	}
	aead, err := open(ctx, ks, kc, h)
	if err != nil {
		return nil, err
	}
	return &reader{r: stream.NewReader(aead, hdr, h.chunkSize, src)}, nil
}

type reader struct{ r *stream.Reader }

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("envelope: %w", err)
	}
	return n, err
}

// ReaderAt gives random access to the plaintext of an object. It is safe for concurrent use if
// its source is.
type ReaderAt struct {
	r *stream.ReaderAt
}

// NewReaderAt opens the object in the first size bytes of src. It authenticates the header and
// the final chunk at once, so an object cut short fails here; each ReadAt then reads and
// authenticates only the chunks it covers.
func NewReaderAt(ctx context.Context, ks KeySource, src io.ReaderAt, size int64, kc kms.Context) (*ReaderAt, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: negative size", ErrMalformedHeader)
	}
	h, hdr, err := parseHeader(io.NewSectionReader(src, 0, size))
	if err != nil {
		return nil, err
	}
	aead, err := open(ctx, ks, kc, h)
	if err != nil {
		return nil, err
	}
	base := int64(len(hdr))
	r, err := stream.NewReaderAt(aead, hdr, h.chunkSize, src, base, size-base)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return &ReaderAt{r: r}, nil
}

// ReadAt implements io.ReaderAt over the plaintext.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.r.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("envelope: %w", err)
	}
	return n, err
}

// Size returns the size of the plaintext.
func (r *ReaderAt) Size() int64 { return r.r.Size() }

// FromKeyStore returns a KeySource that calls a kms.KeyStore directly, for processes that hold
// one: trustd, tests and local tools. Workloads use an *sdk.Client instead.
func FromKeyStore(s kms.KeyStore) KeySource { return keyStoreSource{s} }

type keyStoreSource struct{ s kms.KeyStore }

func (k keyStoreSource) GenerateDataKey(ctx context.Context, keyName string, kc kms.Context) (*secret.Bytes, []byte, error) {
	b, err := kms.Bind(keyName, kc)
	if err != nil {
		return nil, nil, err
	}
	dk, err := k.s.GenerateDataKey(ctx, b)
	if err != nil {
		return nil, nil, err
	}
	return dk.Plaintext, dk.Wrapped, nil
}

func (k keyStoreSource) UnwrapDataKey(ctx context.Context, keyName string, wrapped []byte, kc kms.Context) (*secret.Bytes, error) {
	b, err := kms.Bind(keyName, kc)
	if err != nil {
		return nil, err
	}
	return k.s.UnwrapDataKey(ctx, b, wrapped)
}
