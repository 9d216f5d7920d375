//go:build !unix

package posix

import (
	"os"
	"path/filepath"
)

// lockDir only marks the directory where advisory locks are not available: run one trustd per
// log directory.
func lockDir(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
}
