package audit

import (
	"bytes"
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
	if err != nil || len(root) != hashSize {
		return nil, fmt.Errorf("%w: root hash %q", ErrCheckpoint, rootStr)
	}
	// Extension lines are allowed by tlog-checkpoint; we write none and ignore any.
	return &Checkpoint{Origin: origin, Size: size, Root: root}, nil
}

// signCheckpoint signs c with s.
func signCheckpoint(c Checkpoint, s note.Signer) ([]byte, error) {
	return note.Sign(&note.Note{Text: c.marshal()}, s)
}

func sameRoot(a, b []byte) bool { return bytes.Equal(a, b) }
