package daemon

import (
	"context"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/highwater"
	"github.com/medicus-cloud/trust/metrics"
)

// openHighWater opens the collateral high-water mark (issue 16): in the audit log's PostgreSQL
// database when the audit backend is postgres, so that no replica accepts collateral older than
// another has seen; otherwise in memory (the verifiers' disk caches keep it across restarts).
func (d *Daemon) openHighWater(ctx context.Context, env Env) (attest.HighWater, error) {
	if d.cfg.Audit.Backend != "postgres" {
		return &highwater.Mem{}, nil
	}
	dsn, err := d.auditDSN(env)
	if err != nil {
		return nil, err
	}
	pg, err := highwater.OpenPG(ctx, dsn)
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, pg.Close)
	return pg, nil
}

// registerCollateral exports the age of the collateral of every verifier that refreshes its own.
func (d *Daemon) registerCollateral(vs []attest.Verifier) error {
	var rs []attest.CollateralReporter
	for _, v := range vs {
		if r, ok := v.(attest.CollateralReporter); ok {
			rs = append(rs, r)
		}
	}
	return metrics.RegisterCollateral(d.registry, nil, nil, rs...)
}
