package envelope

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/medicus-cloud/trust/kms"
)

// The header, all integers big-endian:
//
//	magic          6 bytes  "MTENV\n"
//	version        1 byte   2 (1 is read too)
//	suite          1 byte   1 = HKDF-SHA256, AES-256-GCM STREAM
//	chunk size     uint32   MinChunkSize..MaxChunkSize
//	key name       uint8 length, then the name (kms.CheckName)
//	wrapped DEK    uint16 length (1..MaxWrappedSize), then the bytes
//	context digest 32 bytes (kms.Context.Digest): version 1 only
//	salt           32 bytes, random per object
//	header MAC     32 bytes, HMAC-SHA256 under a key derived from the DEK of all the above and,
//	               in version 2, of the context digest after them (bound, not stored)
//
// Version 1 stored the context digest in the clear: anyone holding stored objects could confirm
// a guessed case or patient identifier offline, and group objects by patient. Version 2 binds
// the context through the MAC (and the key store's unwrap) only.
//
// It is written and parsed here only. The parser is strict: every field is checked, and anything
// unexpected is an error that names the field.
const (
	magic          = "MTENV\n"
	formatVersion  = 2 // what Encrypt and NewWriter write
	formatV1       = 1 // read only: its header stores the context digest
	suiteAES256GCM = 1

	digestSize = sha256.Size
	saltSize   = 32
	macSize    = sha256.Size

	fixedPrefix = len(magic) + 1 + 1 + 4 + 1
	maxHeader   = fixedPrefix + kms.MaxNameLen + 2 + MaxWrappedSize + digestSize + saltSize + macSize
)

// Limits of the format.
const (
	// MaxWrappedSize bounds the wrapped data key stored in the header.
	MaxWrappedSize = 1024
	// MinChunkSize and MaxChunkSize bound the chunk size, so that a header cannot make a reader
	// allocate more than a few MiB.
	MinChunkSize = 256
	MaxChunkSize = 4 << 20
	// DefaultChunkSize is used when Options.ChunkSize is zero.
	DefaultChunkSize = 64 << 10
)

type header struct {
	version   byte
	chunkSize int
	keyName   string
	wrapped   []byte
	// digest is the context digest: stored in a version 1 header; in version 2 the caller's,
	// covered by the MAC but never written.
	digest []byte
	salt   []byte
	mac    []byte
}

// marshalUnsigned returns the header without its MAC: the bytes the MAC covers.
func (h *header) marshalUnsigned() []byte {
	b := make([]byte, 0, maxHeader)
	b = append(b, magic...)
	b = append(b, h.version, suiteAES256GCM)
	b = binary.BigEndian.AppendUint32(b, uint32(h.chunkSize))
	b = append(b, byte(len(h.keyName)))
	b = append(b, h.keyName...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.wrapped)))
	b = append(b, h.wrapped...)
	if h.version == formatV1 {
		b = append(b, h.digest...)
	}
	return append(b, h.salt...)
}

// check validates a header about to be written or opened (the context digest is known).
func (h *header) check() error {
	if err := h.checkFields(); err != nil {
		return err
	}
	if len(h.digest) != digestSize {
		return fmt.Errorf("%w: context digest has the wrong size", ErrMalformedHeader)
	}
	return nil
}

// checkFields validates the fields a header stores.
func (h *header) checkFields() error {
	if h.chunkSize < MinChunkSize || h.chunkSize > MaxChunkSize {
		return fmt.Errorf("%w: chunk size %d outside %d..%d", ErrMalformedHeader, h.chunkSize, MinChunkSize, MaxChunkSize)
	}
	if err := kms.CheckName(h.keyName); err != nil {
		return fmt.Errorf("%w: key name: %v", ErrMalformedHeader, err)
	}
	if len(h.wrapped) == 0 || len(h.wrapped) > MaxWrappedSize {
		return fmt.Errorf("%w: wrapped key is %d bytes, want 1..%d", ErrMalformedHeader, len(h.wrapped), MaxWrappedSize)
	}
	if h.version == formatV1 && len(h.digest) != digestSize || len(h.salt) != saltSize {
		return fmt.Errorf("%w: context digest or salt has the wrong size", ErrMalformedHeader)
	}
	return nil
}

// parseHeader reads exactly one header from r and returns it with its encoding (MAC included),
// the associated data of every chunk. It reads nothing past the header.
func parseHeader(r io.Reader) (*header, []byte, error) {
	raw := make([]byte, 0, maxHeader)
	read := func(n int, field string) ([]byte, error) {
		start := len(raw)
		raw = raw[:start+n]
		if _, err := io.ReadFull(r, raw[start:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				if start == 0 {
					return nil, fmt.Errorf("%w: empty input", ErrNotEnvelope)
				}
				return nil, fmt.Errorf("%w: input ends in the %s", ErrMalformedHeader, field)
			}
			return nil, fmt.Errorf("envelope: reading header: %w", err)
		}
		return raw[start:], nil
	}
	p, err := read(len(magic), "magic")
	if err != nil {
		return nil, nil, err
	}
	if string(p) != magic {
		return nil, nil, fmt.Errorf("%w: bad magic", ErrNotEnvelope)
	}
	if p, err = read(2, "version"); err != nil {
		return nil, nil, err
	}
	if p[0] != formatVersion && p[0] != formatV1 {
		return nil, nil, fmt.Errorf("%w: format version %d, this SDK reads %d and %d", ErrUnsupportedVersion, p[0], formatV1, formatVersion)
	}
	if p[1] != suiteAES256GCM {
		return nil, nil, fmt.Errorf("%w: suite %d", ErrUnsupportedSuite, p[1])
	}
	h := &header{version: p[0]}
	if p, err = read(4, "chunk size"); err != nil {
		return nil, nil, err
	}
	cs := binary.BigEndian.Uint32(p)
	if cs < MinChunkSize || cs > MaxChunkSize {
		return nil, nil, fmt.Errorf("%w: chunk size %d outside %d..%d", ErrMalformedHeader, cs, MinChunkSize, MaxChunkSize)
	}
	h.chunkSize = int(cs)
	if p, err = read(1, "key name length"); err != nil {
		return nil, nil, err
	}
	if int(p[0]) > kms.MaxNameLen {
		return nil, nil, fmt.Errorf("%w: key name is %d bytes, at most %d", ErrMalformedHeader, p[0], kms.MaxNameLen)
	}
	if p, err = read(int(p[0]), "key name"); err != nil {
		return nil, nil, err
	}
	h.keyName = string(p)
	if p, err = read(2, "wrapped key length"); err != nil {
		return nil, nil, err
	}
	wl := int(binary.BigEndian.Uint16(p))
	if wl == 0 || wl > MaxWrappedSize {
		return nil, nil, fmt.Errorf("%w: wrapped key is %d bytes, want 1..%d", ErrMalformedHeader, wl, MaxWrappedSize)
	}
	if h.wrapped, err = read(wl, "wrapped key"); err != nil {
		return nil, nil, err
	}
	if h.version == formatV1 {
		if h.digest, err = read(digestSize, "context digest"); err != nil {
			return nil, nil, err
		}
	}
	if h.salt, err = read(saltSize, "salt"); err != nil {
		return nil, nil, err
	}
	if h.mac, err = read(macSize, "header MAC"); err != nil {
		return nil, nil, err
	}
	if err := h.checkFields(); err != nil {
		return nil, nil, err
	}
	// The fields above alias raw; give them their own copies so raw can be handed out.
	h.wrapped, h.digest, h.salt, h.mac = bytes.Clone(h.wrapped), bytes.Clone(h.digest), bytes.Clone(h.salt), bytes.Clone(h.mac)
	return h, raw, nil
}

// sign sets the MAC and returns the full encoding.
func (h *header) sign(macKey []byte) []byte {
	b := h.marshalUnsigned()
	h.mac = h.macOf(macKey, b)
	return append(b, h.mac...)
}

// macOf is the MAC of the unsigned header b: version 2 also covers the context digest.
func (h *header) macOf(macKey, b []byte) []byte {
	m := hmac.New(sha256.New, macKey)
	m.Write(b)
	if h.version != formatV1 {
		m.Write(h.digest)
	}
	return m.Sum(nil)
}

// verify checks the MAC in constant time.
func (h *header) verify(macKey []byte) error {
	if !hmac.Equal(h.macOf(macKey, h.marshalUnsigned()), h.mac) {
		if h.version != formatV1 {
			return fmt.Errorf("%w: header MAC does not match (header modified, another context, or the key store returned another key)", ErrHeaderAuth)
		}
		return fmt.Errorf("%w: header MAC does not match (header modified, or the key store returned another key)", ErrHeaderAuth)
	}
	return nil
}
