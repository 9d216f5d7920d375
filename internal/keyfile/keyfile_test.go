package keyfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true}, {0o400, true}, {0o640, true}, {0o440, true},
		{0o644, false}, {0o604, false}, {0o660, false}, {0o666, false}, {0o601, false},
	}
	for _, tc := range tests {
		p := filepath.Join(dir, tc.mode.String())
		if err := os.WriteFile(p, []byte("secret-material"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, tc.mode)
		b, err := Read(p, "test key")
		if tc.ok != (err == nil) {
			t.Errorf("mode %v: err %v, want ok=%v", tc.mode, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), "secret-material") {
			t.Errorf("error echoes the file: %v", err)
		}
		if tc.ok && string(b) != "secret-material" {
			t.Errorf("mode %v: read %q", tc.mode, b)
		}
	}
	if _, err := Read(dir, "test key"); err == nil {
		t.Error("a directory was read as a key file")
	}
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, MaxSize+1), 0o600)
	if _, err := Read(big, "test key"); err == nil {
		t.Error("oversized key file read")
	}
}
