package pglog

import (
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// ReadKeyFile reads the shared note signing key from a file that only its owner may read
// (mode 0600 or stricter), as every replica must.
func ReadKeyFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("pglog: note key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("pglog: note key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("pglog: note key %s is readable by others (mode %v): want 0600", path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, 4<<10))
	if err != nil {
		return "", fmt.Errorf("pglog: note key: %w", err)
	}
	k := strings.TrimSpace(string(b))
	if _, err := note.NewSigner(k); err != nil {
		// Never echo the file: it is the private key.
		return "", fmt.Errorf("pglog: %s is not a note signing key", path)
	}
	return k, nil
}

// GenerateKey makes a new note signing key for a log named origin (audit.DefaultOrigin, or the
// deployment's own name) and its verifier key. Write skey to a 0600 file given to every
// replica; publish vkey to auditors.
func GenerateKey(rand io.Reader, origin string) (skey, vkey string, err error) {
	return note.GenerateKey(rand, origin)
}
