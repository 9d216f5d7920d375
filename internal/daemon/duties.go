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
// withdrawals) and the two-person requests (break-glass, shred). Both are shared by the
// replicas: with the postgres audit backend they live in the audit database (table
// trust_admin_state), otherwise in the data directory (consent.json, breakglass.json).
//
// The consent registry is read again every 2 s (Serve runs it), and a replica that cannot read it for 30 s
// refuses every release that needs consent: a withdrawal reaches every replica within 2 s. The
// two-person store reads and changes the stored state on every call, a break-glass release
// included, so an approval or a review counts everywhere at once. See SECURITY.md.
type duties struct {
	consent    *consent.Registry
	breakGlass *breakglass.Store
}

func (d *Daemon) openDuties(ctx context.Context, env Env) (*duties, error) {
	localConsent := filepath.Join(d.cfg.DataDir, "consent.json")
	localBreakGlass := filepath.Join(d.cfg.DataDir, "breakglass.json")
	var consentDoc consent.Store = &shareddoc.File{Path: localConsent}
	var breakGlassDoc breakglass.Doc = &shareddoc.File{Path: localBreakGlass}
	shared := d.cfg.Audit.Backend == "postgres"
	if shared {
		dsn, err := d.auditDSN(env)
		if err != nil {
			return nil, err
		}
		open := func(name string) (*shareddoc.PG, error) {
			pg, err := shareddoc.OpenPG(ctx, dsn, name)
			if err != nil {
				return nil, err
			}
			d.closers = append(d.closers, pg.Close)
			return pg, nil
		}
		cpg, err := open("consent")
		if err != nil {
			return nil, err
		}
		bpg, err := open("breakglass")
		if err != nil {
			return nil, err
		}
		consentDoc, breakGlassDoc = cpg, bpg
	}
	c, err := consent.OpenStore(ctx, consentDoc, consent.Options{
		PollInterval: consent.DefaultPollInterval, MaxStale: consent.DefaultMaxStale,
		OnError: func(err error) {
			d.log.Error("consent registry refresh failed; releases that need consent fail closed after 30s", "err", err)
		}})
	if err != nil {
		return nil, err
	}
	b, err := breakglass.OpenDoc(breakGlassDoc)
	if err != nil {
		return nil, err
	}
	if shared {
		// What this replica kept in its data directory before: nothing of it may be lost,
		// least of all a withdrawal.
		for _, m := range []struct {
			file  string
			merge func(string) (int, error)
		}{{localConsent, c.Merge}, {localBreakGlass, b.Merge}} {
			n, err := m.merge(m.file)
			if err != nil {
				return nil, fmt.Errorf("merging %s into the shared state: %w", m.file, err)
			}
			if n > 0 {
				d.log.Warn("merged admin state from the data directory into the audit database", "file", m.file, "entries", n)
			}
		}
	}
	d.log.Info("patient-data duties state opened", "shared", shared)
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
