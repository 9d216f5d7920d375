package posix

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/audittest"
	"github.com/medicus-cloud/trust/internal/benchratio"
)

// BenchmarkRatioAudit prints "ratio audit-append/fsync": the throughput of Append with many
// concurrent callers (group commit: one set of fsyncs per batch) divided by the throughput of
// writing the same record bytes to a file with one fsync each, one at a time. Each commit pays
// for one fdatasync of the journal; tiles and checkpoints are published in the background, so a
// value above 1 means batching wins back more than the log's bookkeeping costs.
func BenchmarkRatioAudit(b *testing.B) {
	rec, err := audit.Marshal(audittest.Record(1))
	if err != nil {
		b.Fatal(err)
	}
	l, err := Open(context.Background(), Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "raw"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const appenders = 64
	r := audittest.Record(1)
	benchratio.Throughput(b, "audit-append/fsync",
		func(n int) {
			var wg sync.WaitGroup
			work := make(chan struct{}, n)
			for range n {
				work <- struct{}{}
			}
			close(work)
			for range appenders {
				wg.Go(func() {
					for range work {
						if _, err := l.Append(context.Background(), r); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		},
		func(n int) {
			for range n {
				if _, err := f.Write(rec); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
			}
		})
}
