package atomicfile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/medicus-cloud/trust/internal/atomicfile"
)

func TestWriteFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		old  []byte // nil: no file before
		perm os.FileMode
	}{
		{"create", nil, 0o600},
		{"replace", []byte("old content"), 0o644},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "f")
			if tc.old != nil {
				if err := os.WriteFile(p, tc.old, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := atomicfile.WriteFile(p, []byte("new"), tc.perm); err != nil {
				t.Fatal(err)
			}
			checkFile(t, p, "new", tc.perm)
			checkOnly(t, dir, "f")
		})
	}
}

func TestWriteNew(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := atomicfile.WriteNew(p, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := atomicfile.WriteNew(p, []byte("second"), 0o600)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second WriteNew: %v, want fs.ErrExist", err)
	}
	checkFile(t, p, "first", 0o600)
	checkOnly(t, dir, "key")
}

func TestWriteFileErrors(t *testing.T) {
	dir := t.TempDir()
	// A missing directory: nothing is created.
	if err := atomicfile.WriteFile(filepath.Join(dir, "no", "f"), []byte("x"), 0o644); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	// A directory in the way of the rename: the temporary file is removed.
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "d", "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "d"), []byte("x"), 0o644); err == nil {
		t.Fatal("rename over a non-empty directory succeeded")
	}
	checkOnly(t, dir, "d")
}

func checkFile(t *testing.T, p, want string, perm os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil || string(b) != want {
		t.Fatalf("%s = %q, %v; want %q", p, b, err, want)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != perm {
		t.Fatalf("%s mode %v, %v; want %v", p, fi.Mode().Perm(), err, perm)
	}
}

// checkOnly fails if dir holds anything but the names given (a leftover temporary file).
func checkOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(names) {
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		t.Fatalf("%s holds %v, want %v", dir, got, names)
	}
}
