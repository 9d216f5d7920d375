// Package atomicfile writes files durably and atomically: a reader sees the old content or the
// new, never a torn file, and once a write returns the new content survives a crash.
//
// Both functions write a temporary file in the target's directory (so that the rename stays
// on one filesystem), fsync it, put it in place and fsync the directory. On error the
// temporary file is removed and the target is as it was.
package atomicfile

import (
	"os"
	"path/filepath"
)

// WriteFile replaces (or creates) path with data, with permissions perm.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, os.Rename)
}

// WriteNew creates path with data and permissions perm, and fails with an error wrapping
// fs.ErrExist if path exists (as os.O_EXCL would, but never leaving a partial file at path).
func WriteNew(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, func(tmp, path string) error {
		if err := os.Link(tmp, path); err != nil {
			return err
		}
		return os.Remove(tmp)
	})
}

func write(path string, data []byte, perm os.FileMode, place func(tmp, path string) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	// Chmod before the data is written: a 0600 file is never readable by others, not even
	// for a moment.
	if err = f.Chmod(perm); err == nil {
		if _, err = f.Write(data); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err = place(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making the entries created, renamed or removed in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
