package tdx_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/eventlog"
	"github.com/medicus-cloud/trust/attest/tdx"
	"github.com/medicus-cloud/trust/internal/benchratio"
)

// BenchmarkRatioEventLog measures what a CCEL adds to a TDX verification (the real COS 113 CCEL,
// a 256 KiB log area: table check, parse, replay into RTMR0..3, compare, components) against a
// warm verification of the quote without it (PCK chain and collateral cached). Both also run
// through Verify once to show they pass.
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
	var quoted [4][]byte
	c, _ := v.Verify(ctx, withLog, at)
	for i := range quoted {
		quoted[i] = c.Measurements[fmt.Sprintf("rtmr%d", i)]
	}
	// What Verify adds for the log: check the table, replay, compare, draw the components.
	replay := benchratio.PerOp(b, func() error {
		t, err := eventlog.ParseCCELTable(table)
		if err != nil {
			return err
		}
		if err := t.CheckTDXLog(len(raw)); err != nil {
			return err
		}
		r, err := eventlog.ReplayTDX(raw)
		if err != nil {
			return err
		}
		if err := r.Verify(quoted); err != nil {
			return err
		}
		_ = r.Components.Digests()
		return nil
	})
	benchratio.Value(b, "eventlog-replay/tdx-verify-warm", replay/warm)
}
