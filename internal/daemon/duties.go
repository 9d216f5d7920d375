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
)

// duties is the admin-only state of the patient-data duties: the consent registry (tenant keys,
// withdrawals) and the two-person requests (break-glass, shred), each a private file in the
// data directory. With several replicas, the data directory must be shared (or the files
// replicated) for a withdrawal to reach every replica: see SECURITY.md.
type duties struct {
	consent    *consent.Registry
	breakGlass *breakglass.Store
}

func openDuties(dataDir string) (*duties, error) {
	c, err := consent.Open(filepath.Join(dataDir, "consent.json"))
	if err != nil {
		return nil, err
	}
	b, err := breakglass.Open(filepath.Join(dataDir, "breakglass.json"))
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
