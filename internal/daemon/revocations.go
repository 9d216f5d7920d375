package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/medicus-cloud/trust/revoke"
)

// RevocationsConfig tunes how fast the security team's revocations reach every replica. The
// revocations live in the audit log's PostgreSQL database when the audit backend is postgres
// (shared by the replicas), otherwise in DataDir/revocations.json.
type RevocationsConfig struct {
	// PollInterval is how often each replica re-reads the store. Default 2s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// MaxStale is how long a replica that cannot read the store keeps using the last list it
	// read; past it every attestation and release fails closed. Default 30s.
	MaxStale time.Duration `yaml:"max_stale"`
}

func (d *Daemon) openRevocations(ctx context.Context, env Env) (*revoke.Set, error) {
	var store revoke.Store
	where := ""
	if d.cfg.Audit.Backend == "postgres" {
		dsn, err := d.auditDSN(env)
		if err != nil {
			return nil, err
		}
		pg, err := revoke.OpenPG(ctx, dsn)
		if err != nil {
			return nil, err
		}
		d.closers = append(d.closers, pg.Close)
		store, where = pg, "postgres"
	} else {
		path := filepath.Join(d.cfg.DataDir, "revocations.json")
		store, where = &revoke.FileStore{Path: path}, path
	}
	rc := d.cfg.Revocations
	set, err := revoke.Open(ctx, store, revoke.Options{PollInterval: rc.PollInterval, MaxStale: rc.MaxStale,
		OnError: func(err error) {
			d.log.Error("revocation refresh failed; keeping the last list until max_stale", "err", err)
		}})
	if err != nil {
		return nil, fmt.Errorf("revocations: %w", err)
	}
	list, _ := set.List()
	d.log.Info("revocations loaded", "from", where, "count", len(list))
	return set, nil
}
