package postgres

import (
	"fmt"
	"io"

	"golang.org/x/mod/sumdb/note"
)

// ReadKeyFile reads the shared note signing key from a file that only its owner may read
// (mode 0600 or stricter), as every replica must.
func ReadKeyFile(path string) (string, error) {
	k, err := readPrivate(path, "note key")
	if err != nil {
		return "", err
	}
	if _, err := note.NewSigner(k); err != nil {
		// Never echo the file: it is the private key.
		return "", fmt.Errorf("postgres: %s is not a note signing key", path)
	}
	return k, nil
}

// GenerateKey makes a new note signing key for a log named origin (tlog.DefaultOrigin, or the
// deployment's own name) and its verifier key. Write skey to a 0600 file given to every
// replica; publish vkey to auditors.
func GenerateKey(rand io.Reader, origin string) (skey, vkey string, err error) {
	return note.GenerateKey(rand, origin)
}
