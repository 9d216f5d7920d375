package revoke

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/medicus-cloud/trust/internal/shareddoc"
)

// MaxFileSize bounds the revocation file that FileStore reads.
const MaxFileSize = 16 << 20

// FileStore keeps revocations in one JSON file (a shareddoc.File), replaced atomically (write,
// fsync, rename, fsync the directory) on every Add under an flock, so that replicas sharing one
// data directory take turns. Replicas on separate machines share a PGStore.
type FileStore struct {
	Path string
}

type fileFormat struct {
	Revocations []Revocation `json:"revocations"`
}

func (f *FileStore) doc() *shareddoc.File { return &shareddoc.File{Path: f.Path} }

// List implements Store. A missing file holds no revocations.
func (f *FileStore) List(ctx context.Context) ([]Revocation, error) {
	b, err := f.doc().Read(ctx)
	if err != nil || b == nil {
		return nil, err
	}
	return parseFile(b)
}

func parseFile(b []byte) ([]Revocation, error) {
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("revocation file: %d bytes, at most %d", len(b), MaxFileSize)
	}
	var ff fileFormat
	if err := json.Unmarshal(b, &ff); err != nil {
		return nil, fmt.Errorf("revocation file: %w", err)
	}
	for i := range ff.Revocations {
		if err := ff.Revocations[i].Normalize(); err != nil {
			return nil, fmt.Errorf("revocation file: entry %d: %w", i, err)
		}
		if ff.Revocations[i].ID == "" {
			return nil, fmt.Errorf("revocation file: entry %d: id: missing", i)
		}
	}
	return ff.Revocations, nil
}

// Add implements Store.
func (f *FileStore) Add(ctx context.Context, r Revocation) error {
	return f.doc().Update(ctx, func(cur []byte) ([]byte, error) {
		var list []Revocation
		if cur != nil {
			var err error
			if list, err = parseFile(cur); err != nil {
				return nil, err
			}
		}
		if slices.ContainsFunc(list, func(o Revocation) bool { return o.ID == r.ID }) {
			return nil, fmt.Errorf("revocation %s exists", r.ID)
		}
		b, err := json.MarshalIndent(fileFormat{Revocations: append(list, r)}, "", "  ")
		if err != nil {
			return nil, err
		}
		return append(b, '\n'), nil // 0600, as shareddoc writes every state file
	})
}
