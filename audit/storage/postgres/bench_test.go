package postgres

import (
	"context"
	"sync"
	"testing"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/storage/posix"
	"github.com/medicus-cloud/trust/audit/storage/postgres/pgtest"
	"github.com/medicus-cloud/trust/internal/benchratio"
)

// BenchmarkRatioPGAudit prints "ratio audit-append-pg/local": the throughput of Append to the
// PostgreSQL log divided by that of the posix log, each with 32 concurrent appenders (group
// commit in both: one transaction, or one set of fsyncs, per batch). The server is a local
// throw-away cluster with its default durability (fsync and synchronous_commit on). It also
// prints "ratio audit-append-pg-2replicas/local", the same appenders split between two
// replicas (two Logs on the database, whose transactions take turns on the tree head), and
// reports the absolute PostgreSQL figures as appends/s metrics.
func BenchmarkRatioPGAudit(b *testing.B) {
	c := pgtest.Start(b)
	skey, _ := newKey(b)
	pg := openLog(b, c.DSN(), skey)
	local, err := posix.Open(context.Background(), posix.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer local.Close()
	const appenders = 32
	r := record("bench", 1)
	pg2 := openLog(b, c.DSN(), skey)
	run := func(logs ...interface {
		Append(context.Context, *audit.Record) (uint64, error)
	}) func(n int) {
		return func(n int) {
			var wg sync.WaitGroup
			work := make(chan struct{}, n)
			for range n {
				work <- struct{}{}
			}
			close(work)
			for a := range appenders {
				l := logs[a%len(logs)]
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
		}
	}
	benchratio.Throughput(b, "audit-append-pg/local", run(pg), run(local))
	benchratio.Throughput(b, "audit-append-pg-2replicas/local", run(pg, pg2), run(local))
	b.ReportMetric(1e9/benchratio.NsPerOp(run(pg)), "pg-appends/s")
	b.ReportMetric(1e9/benchratio.NsPerOp(run(pg, pg2)), "pg-2replicas-appends/s")
	b.ReportMetric(1e9/benchratio.NsPerOp(run(local)), "local-appends/s")
}
