package shareddoc_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/medicus-cloud/trust/audit/storage/postgres/pgtest"
	"github.com/medicus-cloud/trust/internal/shareddoc"
)

// replicas returns two stores on one document, as two trustd replicas hold it.
// store is what shareddoc.File and shareddoc.PG both are.
type store interface {
	Read(ctx context.Context) ([]byte, error)
	Update(ctx context.Context, f func(cur []byte) ([]byte, error)) error
}

func replicas(t *testing.T) map[string][2]store {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	pg := pgtest.Start(t)
	open := func() store {
		s, err := shareddoc.OpenPG(ctx, pg.DSN(), "counter")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return map[string][2]store{
		"file":     {&shareddoc.File{Path: path}, &shareddoc.File{Path: path}},
		"postgres": {open(), open()},
	}
}

// Concurrent changes from two replicas all survive, a failed change stores nothing, and a
// missing document reads as nil.
func TestUpdate(t *testing.T) {
	ctx := context.Background()
	for name, st := range replicas(t) {
		t.Run(name, func(t *testing.T) {
			if b, err := st[0].Read(ctx); err != nil || b != nil {
				t.Fatalf("empty store: %q, %v", b, err)
			}
			incr := func(cur []byte) ([]byte, error) {
				n, _ := strconv.Atoi(string(cur))
				return []byte(strconv.Itoa(n + 1)), nil
			}
			var wg sync.WaitGroup
			for i := range 40 {
				wg.Go(func() {
					if err := st[i%2].Update(ctx, incr); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			boom := errors.New("boom")
			if err := st[0].Update(ctx, func([]byte) ([]byte, error) { return []byte("lost"), boom }); !errors.Is(err, boom) {
				t.Fatalf("failing update: %v", err)
			}
			for _, s := range st {
				if b, err := s.Read(ctx); err != nil || string(b) != "40" {
					t.Fatalf("after 40 increments on two replicas: %q, %v", b, err)
				}
			}
		})
	}
}

// The state file is private.
func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d", "state.json")
	f := &shareddoc.File{Path: path}
	if err := f.Update(context.Background(), func([]byte) ([]byte, error) { return []byte("{}"), nil }); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v, %v; want mode 0600", fi, err)
	}
}
