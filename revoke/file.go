package revoke

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/medicus-cloud/trust/internal/atomicfile"
)

// MaxFileSize bounds the revocation file that FileStore reads.
const MaxFileSize = 16 << 20

// FileStore keeps revocations in one JSON file, replaced atomically (write, fsync, rename, fsync
// the directory) on every Add. It serves a single trustd, or replicas sharing one data
// directory; replicas on separate machines share a PGStore.
type FileStore struct {
	Path string
	mu   sync.Mutex
}

type fileFormat struct {
	Revocations []Revocation `json:"revocations"`
}

// List implements Store. A missing file holds no revocations.
func (f *FileStore) List(context.Context) ([]Revocation, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
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
	f.mu.Lock()
	defer f.mu.Unlock()
	list, err := f.List(ctx)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(list, func(o Revocation) bool { return o.ID == r.ID }) {
		return fmt.Errorf("revocation %s exists", r.ID)
	}
	b, err := json.MarshalIndent(fileFormat{Revocations: append(list, r)}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// 0600, as the temporary files this wrote before were.
	return atomicfile.WriteFile(f.Path, append(b, '\n'), 0o600)
}
