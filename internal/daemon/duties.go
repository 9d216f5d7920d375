package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/service"

	"github.com/medicus-cloud/trust/breakglass"
	"github.com/medicus-cloud/trust/consent"
	"github.com/medicus-cloud/trust/internal/shareddoc"
)

// duties is the admin-only state of the patient-data duties: the consent registry (tenant keys,
// withdrawals) and the two-person requests (break-glass, shred).
//
// The consent registry is shared by the replicas: with the postgres audit backend it lives in
// the audit database (table trust_admin_state), otherwise in DataDir/consent.json, and every
// replica reads it again every 2 s; one that cannot read it for 30 s refuses every release that
// needs consent. A withdrawal therefore reaches every replica within 2 s. The two-person
// requests stay in DataDir/breakglass.json, read at start: an approval counts on the replica
// that made it (elsewhere the break-glass is refused, which fails closed); see SECURITY.md.
type duties struct {
	consent    *consent.Registry
	breakGlass *breakglass.Store
}

func (d *Daemon) openDuties(ctx context.Context, env Env) (*duties, error) {
	local := filepath.Join(d.cfg.DataDir, "consent.json")
	var store consent.Store = &shareddoc.File{Path: local}
	where := local
	if d.cfg.Audit.Backend == "postgres" {
		dsn, err := d.auditDSN(env)
		if err != nil {
			return nil, err
		}
		pg, err := shareddoc.OpenPG(ctx, dsn, "consent")
		if err != nil {
			return nil, err
		}
		d.closers = append(d.closers, pg.Close)
		store, where = pg, "postgres"
	}
	c, err := consent.OpenStore(ctx, store, consent.Options{
		PollInterval: consent.DefaultPollInterval, MaxStale: consent.DefaultMaxStale,
		OnError: func(err error) {
			d.log.Error("consent registry refresh failed; releases that need consent fail closed after 30s", "err", err)
		}})
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, c.Close)
	if where != local {
		// A registry this replica kept in its data directory before: nothing of it may be lost,
		// least of all a withdrawal.
		n, err := c.Merge(local)
		if err != nil {
			return nil, fmt.Errorf("consent registry: merging %s: %w", local, err)
		}
		if n > 0 {
			d.log.Warn("consent registry: merged entries from the data directory into the shared store", "file", local, "entries", n)
		}
	}
	d.log.Info("consent registry loaded", "from", where)
	b, err := breakglass.Open(filepath.Join(d.cfg.DataDir, "breakglass.json"))
	if err != nil {
		return nil, err
	}
	return &duties{consent: c, breakGlass: b}, nil
}

// openShadow opens the candidate bundle of shadow mode, verified like the active one (its own
// rollback state), or returns nil when none is configured.
func (d *Daemon) openShadow(ctx context.Context) (service.PolicySource, error) {
	if d.cfg.ShadowPolicy == "" {
		return nil, nil
	}
	o := policies.StoreOptions{Dir: d.cfg.ShadowPolicy, Threshold: d.cfg.PolicyThreshold, AllowUnsigned: d.cfg.Dev,
		StateFile: filepath.Join(d.cfg.DataDir, "shadow-policy-state.json")}
	if d.cfg.PolicyTrustKeys != "" {
		pem, err := os.ReadFile(d.cfg.PolicyTrustKeys)
		if err != nil {
			return nil, fmt.Errorf("policy_trust_keys: %w", err)
		}
		if o.Keys, err = policies.ParseTrustKeys(pem); err != nil {
			return nil, fmt.Errorf("policy_trust_keys: %w", err)
		}
	}
	st, err := policies.OpenStore(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("shadow_policy: %w", err)
	}
	d.log.Info("shadow policy bundle loaded: decisions recorded, not enforced", "path", d.cfg.ShadowPolicy,
		"digest", fmt.Sprintf("%x", st.Current().Digest))
	return st, nil
}
