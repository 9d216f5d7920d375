package posix_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/medicus-cloud/trust/audit/storage/posix"
	"github.com/medicus-cloud/trust/audit/tlog"
	"github.com/medicus-cloud/trust/audit/tlog/tlogtest"
)

func TestConformance(t *testing.T) {
	tlogtest.Run(t, func(t *testing.T) tlogtest.Driver {
		dir := t.TempDir()
		// Running as root defeats permission bits: the store breaks when a file stands where
		// its scratch directory was (every commit writes its checkpoint there first).
		tmp := filepath.Join(dir, "tmp")
		return tlogtest.Driver{
			Open: func(t *testing.T) tlog.Log {
				l, err := posix.Open(context.Background(), posix.Options{Dir: dir})
				if err != nil {
					t.Fatal(err)
				}
				return l
			},
			Break: func(t *testing.T) {
				if err := os.RemoveAll(tmp); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(tmp, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			Repair: func(t *testing.T) {
				if err := os.Remove(tmp); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(tmp, 0o700); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}
