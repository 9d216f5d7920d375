// Package statefile keeps a small piece of trustd's admin state (consent keys, withdrawals,
// break-glass and shred requests) in one JSON file, replaced atomically: write a temporary file
// beside it, fsync, rename, fsync the directory. A crash leaves the old or the new state, never
// a torn one. The file is private to trustd (0600): it may hold operator-written text that the
// public audit log carries only as a digest.
package statefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/medicus-cloud/trust/internal/atomicfile"
)

// MaxSize bounds a state file.
const MaxSize = 16 << 20

// Load decodes path into v; a missing file leaves v as it is and is not an error.
func Load(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(b) > MaxSize {
		return fmt.Errorf("%s: %d bytes, at most %d", path, len(b), MaxSize)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Save writes v to path atomically and durably.
func Save(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o600)
}
