//go:build unix

package posix

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/medicus-cloud/trust/audit/tlog"
)

// lockDir takes an exclusive advisory lock on dir, so that a second process cannot append to
// the same log (two writers would each sign a different tree of the same size: a fork). The
// kernel drops the lock if the process dies.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w: %v", tlog.ErrUnwritable, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("audit: %w: %s is open in another process", ErrLocked, dir)
		}
		return nil, fmt.Errorf("audit: %w: lock: %v", tlog.ErrUnwritable, err)
	}
	return f, nil
}
