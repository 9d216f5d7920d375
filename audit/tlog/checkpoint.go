package tlog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// MaxCheckpointSize bounds the checkpoints we parse.
const MaxCheckpointSize = 16 << 10

// ErrCheckpoint is wrapped by errors about a checkpoint: a bad signature, a wrong key or origin,
// a malformed body.
var ErrCheckpoint = errors.New("bad checkpoint")

// Checkpoint is the body of a C2SP tlog-checkpoint: the origin, the tree size and the root hash.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
}

// marshal returns the note text of c (no extension lines).
func (c Checkpoint) marshal() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root))
}

// OpenCheckpoint verifies a signed checkpoint under the note verifier key vkey (the form
// "name+hash+key" of VerifierKey) and parses it. The origin line must equal the key name.
func OpenCheckpoint(b []byte, vkey string) (*Checkpoint, error) {
	if len(b) > MaxCheckpointSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrCheckpoint, len(b), MaxCheckpointSize)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("%w: verifier key: %v", ErrCheckpoint, err)
	}
	n, err := note.Open(b, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrCheckpoint, err)
	}
	c, err := parseCheckpoint(n.Text)
	if err != nil {
		return nil, err
	}
	if c.Origin != v.Name() {
		return nil, fmt.Errorf("%w: origin %q is not the key name %q", ErrCheckpoint, c.Origin, v.Name())
	}
	return c, nil
}

func parseCheckpoint(text string) (*Checkpoint, error) {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return nil, fmt.Errorf("%w: fewer than three lines", ErrCheckpoint)
	}
	origin := strings.TrimSuffix(lines[0], "\n")
	if origin == "" {
		return nil, fmt.Errorf("%w: empty origin", ErrCheckpoint)
	}
	sizeStr := strings.TrimSuffix(lines[1], "\n")
	size, err := strconv.ParseUint(sizeStr, 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != sizeStr {
		return nil, fmt.Errorf("%w: tree size %q", ErrCheckpoint, sizeStr)
	}
	rootStr := strings.TrimSuffix(lines[2], "\n")
	root, err := base64.StdEncoding.Strict().DecodeString(rootStr)
	if err != nil || len(root) != HashSize {
		return nil, fmt.Errorf("%w: root hash %q", ErrCheckpoint, rootStr)
	}
	// Extension lines are allowed by tlog-checkpoint; we write none and ignore any.
	return &Checkpoint{Origin: origin, Size: size, Root: root}, nil
}

// SignCheckpoint signs c as a tlog-checkpoint note (no extension lines) with s.
func SignCheckpoint(c Checkpoint, s note.Signer) ([]byte, error) {
	return note.Sign(&note.Note{Text: c.marshal()}, s)
}

func sameRoot(a, b []byte) bool { return bytes.Equal(a, b) }

// EmptyRoot is the RFC 6962 root of the empty tree, SHA-256 of nothing.
func EmptyRoot() []byte {
	h := sha256.Sum256(nil)
	return h[:]
}

// VerifierKey derives the note verifier key ("name+hash+key") of a note signing key
// ("PRIVATE+KEY+name+hash+key"), recomputing the public key from the private one so that a
// tampered key cannot name a public key it does not hold.
func VerifierKey(skey string) (string, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return "", err
	}
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return "", fmt.Errorf("audit: %w: note key is not PRIVATE+KEY+name+hash+key", ErrCorrupt)
	}
	v, err := note.NewEd25519VerifierKey(s.Name(), ed25519Public(parts[4]))
	if err != nil {
		return "", fmt.Errorf("audit: %w: note key: %v", ErrCorrupt, err)
	}
	return v, nil
}

// ed25519Public recomputes the public key from the base64 "alg‖seed" of a note signing key.
func ed25519Public(b64 string) ed25519.PublicKey {
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != 1+ed25519.SeedSize {
		// note.NewSigner accepted the key, so this cannot happen; an invalid key makes
		// NewEd25519VerifierKey fail.
		return nil
	}
	return ed25519.NewKeyFromSeed(b[1:]).Public().(ed25519.PublicKey)
}
