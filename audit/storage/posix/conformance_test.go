package posix_test

import (
	"context"
	"testing"

	"github.com/medicus-cloud/trust/audit/storage/posix"
	"github.com/medicus-cloud/trust/audit/tlog"
	"github.com/medicus-cloud/trust/audit/tlog/tlogtest"
)

func TestConformance(t *testing.T) {
	tlogtest.Run(t, func(t *testing.T) tlogtest.Driver {
		dir := t.TempDir()
		var open *posix.Log
		return tlogtest.Driver{
			Open: func(t *testing.T) tlog.Log {
				l, err := posix.Open(context.Background(), posix.Options{Dir: dir})
				if err != nil {
					t.Fatal(err)
				}
				open = l
				return l
			},
			// Running as root defeats permission bits: the store breaks when its journal
			// refuses writes (TestUnwritable covers tiles that cannot be written).
			Break: func(t *testing.T) { posix.BreakJournal(open) },
		}
	})
}
