package tdx_test

import (
	"context"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/tdx"
	"github.com/medicus-cloud/trust/internal/benchratio"
)

// BenchmarkRatioEventLog measures what a CCEL adds to a TDX verification: the full verification
// of a quote carrying the real COS 113 CCEL (parse, replay into RTMR0..3, compare, components)
// minus the same warm verification without it, against the warm verification alone. It is the
// share of a verification the event log costs.
func BenchmarkRatioEventLog(b *testing.B) {
	f := fx(b)
	raw, table := readFile(b, realCCEL), readFile(b, realCCELTable)
	q := ccelQuote(b, raw)
	coll, err := f.Collateral(nil, nil, false)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := coll.WriteDir(dir); err != nil {
		b.Fatal(err)
	}
	v := mustNew(b, tdx.Options{Root: f.PKI.Root, CollateralDir: dir})
	ctx := context.Background()
	at := attest.Options{Now: f.Now}
	plain := &attest.Evidence{TEE: attest.TDX, Report: q}
	withLog := ccelEvidence(q, table, raw)
	for _, e := range []*attest.Evidence{plain, withLog} {
		if c, err := v.Verify(ctx, e, at); err != nil || c.TCBStatus != "UpToDate" {
			b.Fatal(c, err)
		}
	}
	warm := benchratio.PerOp(b, func() error { _, err := v.Verify(ctx, plain, at); return err })
	full := benchratio.PerOp(b, func() error { _, err := v.Verify(ctx, withLog, at); return err })
	replay := full - warm
	if replay < 0 {
		replay = 0
	}
	benchratio.Value(b, "eventlog-replay/tdx-verify-warm", replay/warm)
}
