//go:build !linux

package posix

import (
	"io/fs"
	"os"
	"path/filepath"
)

func fdatasync(f *os.File) error { return f.Sync() }

// syncTree makes every file and directory under dir durable, one fsync each.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}
