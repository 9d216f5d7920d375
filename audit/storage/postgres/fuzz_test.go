package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/medicus-cloud/trust/audit/tlog"
)

// FuzzReadKeyFile: any key file content is either rejected with an error or yields a key that
// signs and has a verifier key.
func FuzzReadKeyFile(f *testing.F) {
	skey, _, err := GenerateKey(rand.Reader, tlog.DefaultOrigin)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(skey + "\n"))
	f.Add([]byte("PRIVATE+KEY+x+00000000+AQ=="))
	f.Add([]byte(""))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "key")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := ReadKeyFile(p)
		if err != nil {
			return
		}
		if _, err := tlog.VerifierKey(k); err != nil {
			t.Fatalf("accepted a key without a verifier key: %v", err)
		}
	})
}

// noRows answers every query as if the tables were empty.
type noRows struct{}

func (noRows) QueryRow(context.Context, string, ...any) pgx.Row { return errRow{} }
func (noRows) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errors.New("no query expected")
}
func (noRows) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, errors.New("no exec expected")
}

type errRow struct{}

func (errRow) Scan(...any) error { return pgx.ErrNoRows }

// FuzzReaderPath: the database reader takes any path without panicking, and anything that is
// not a tlog-tiles object is not found.
func FuzzReaderPath(f *testing.F) {
	for _, s := range []string{"checkpoint", "tile/0/000", "tile/entries/x001/234.p/17", "tile/1/x999/x999/x999/x999/x999/x999/999", "../note.key", "tile/0/000.p/0"} {
		f.Add(s)
	}
	get := reader(noRows{})
	f.Fuzz(func(t *testing.T, p string) {
		b, err := get(context.Background(), p)
		if err == nil {
			t.Fatalf("%q: %d bytes from empty tables", p, len(b))
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%q: %v, want not found", p, err)
		}
	})
}
