package daemon

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/collstore"
	"github.com/medicus-cloud/trust/attest/highwater"
	"github.com/medicus-cloud/trust/collateral"
	"github.com/medicus-cloud/trust/metrics"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/service"
)

// CollateralBundleConfig imports a collateral bundle (trustctl collateral bundle) at startup:
// Intel collateral of several FMSPCs and AMD collateral of several chips, signed by an operator
// key. The TEE sections that are `offline: true` use it (SEV-SNP only without its own
// certs_dir). A bundle issued before the last one imported is refused, and trustd does not start.
type CollateralBundleConfig struct {
	// File is the bundle.
	File string `yaml:"file"`
	// KeysFile holds the operator public keys (PEM PUBLIC KEY blocks, ECDSA P-256 or Ed25519).
	KeysFile string `yaml:"keys_file"`
}

// collateralState is what trustd keeps about collateral beyond the verifiers.
type collateralState struct {
	// highWater is the high-water mark shared by replicas.
	highWater attest.HighWater
	// store, if set, is the collateral store shared by replicas; nil means each verifier's disk
	// cache.
	store attest.CollateralStore
	// bundleDir is where the imported bundle is extracted; "" without one.
	bundleDir string
	bundle    *bundleAge
	// refreshers are the verifiers refreshed on a schedule.
	refreshers []attest.CollateralRefresher
}

// bundleAge reports the imported bundle's age in metrics and trustctl status.
type bundleAge struct {
	issued time.Time
	kid    string
}

func (b *bundleAge) CollateralAges() []attest.CollateralAge {
	return []attest.CollateralAge{{TEE: "bundle", Platform: b.kid, Item: "collateral-bundle", FetchedAt: b.issued, Issued: b.issued}}
}

// bundleRecord is DataDir/collateral/bundle.json: the last bundle imported.
type bundleRecord struct {
	Issued time.Time `json:"issued"`
	Digest string    `json:"sha256"`
	KeyID  string    `json:"kid"`
}

func (d *Daemon) openCollateral(ctx context.Context, env Env) error {
	hw, err := d.openHighWater(ctx, env)
	if err != nil {
		return fmt.Errorf("collateral high-water mark: %w", err)
	}
	d.coll.highWater = hw
	if d.coll.store, err = d.openCollateralStore(ctx, env); err != nil {
		return fmt.Errorf("collateral store: %w", err)
	}
	if d.cfg.CollateralBundle.File == "" {
		return nil
	}
	if err := d.importBundle(); err != nil {
		return fmt.Errorf("collateral_bundle: %w", err)
	}
	return nil
}

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

// openCollateralStore opens the store of fetched collateral that replicas share (issue 16), in
// the same database as the high-water mark when the audit backend is postgres; otherwise nil
// (each verifier keeps its disk cache). A failed operation is logged and counted, and the
// verifier fetches itself: verification and the high-water mark stay the fail-closed guards.
func (d *Daemon) openCollateralStore(ctx context.Context, env Env) (attest.CollateralStore, error) {
	if d.cfg.Audit.Backend != "postgres" {
		return nil, nil
	}
	dsn, err := d.auditDSN(env)
	if err != nil {
		return nil, err
	}
	count, err := metrics.RegisterCollateralStoreErrors(d.registry)
	if err != nil {
		return nil, err
	}
	log := d.log
	pg, err := collstore.OpenPG(ctx, dsn, collstore.Options{OnError: func(op, key string, err error) {
		log.Warn("collateral store failed; fetching without it", "op", op, "key", key, "err", err)
		count(op)
	}})
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, pg.Close)
	return pg, nil
}

// importBundle verifies the configured bundle under the operator keys, refuses it when it was
// issued before the last one imported, and extracts it into DataDir/collateral/bundle.
func (d *Daemon) importBundle() error {
	bc := d.cfg.CollateralBundle
	if bc.KeysFile == "" {
		return errors.New("keys_file (the operator public keys) is required")
	}
	pem, err := os.ReadFile(bc.KeysFile)
	if err != nil {
		return err
	}
	keys, err := policies.ParseTrustKeys(pem)
	if err != nil {
		return fmt.Errorf("keys_file: %w", err)
	}
	data, err := readBounded(bc.File, collateral.MaxBundleSize)
	if err != nil {
		return err
	}
	b, kid, err := collateral.Open(data, keys)
	if err != nil {
		return fmt.Errorf("%s: %w", bc.File, err)
	}
	sum := collateral.Digest(data)
	digest := hex.EncodeToString(sum[:])
	root := filepath.Join(d.cfg.DataDir, "collateral")
	dir := filepath.Join(root, "bundle")
	recPath := filepath.Join(root, "bundle.json")
	var prev bundleRecord
	if rb, err := os.ReadFile(recPath); err == nil {
		if err := json.Unmarshal(rb, &prev); err != nil {
			return fmt.Errorf("%s: %w", recPath, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	switch {
	case b.Issued.Before(prev.Issued):
		return fmt.Errorf("%s: %w: issued %s, the bundle imported last was issued %s", bc.File, collateral.ErrOlder,
			b.Issued.Format(time.RFC3339), prev.Issued.Format(time.RFC3339))
	case b.Issued.Equal(prev.Issued) && digest != prev.Digest:
		return fmt.Errorf("%s: %w: another bundle with the same issue time %s was imported", bc.File, collateral.ErrOlder, b.Issued.Format(time.RFC3339))
	case digest != prev.Digest:
		if err := os.MkdirAll(root, 0o700); err != nil {
			return err
		}
		if err := b.Extract(dir); err != nil {
			return fmt.Errorf("extracting: %w", err)
		}
		rb, _ := json.Marshal(bundleRecord{Issued: b.Issued, Digest: digest, KeyID: kid})
		if err := writeFileAtomic(recPath, rb); err != nil {
			return err
		}
		d.log.Info("collateral bundle imported", "file", bc.File, "issued", b.Issued, "kid", kid, "files", len(b.Files))
	}
	d.coll.bundleDir = dir
	d.coll.bundle = &bundleAge{issued: b.Issued, kid: kid}
	return nil
}

func readBounded(path string, max int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, limit %d", path, fi.Size(), max)
	}
	return os.ReadFile(path)
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// registerCollateral exports the age of the collateral of every verifier that refreshes its own,
// and of the imported bundle.
func (d *Daemon) registerCollateral(vs []attest.Verifier) error {
	var rs []attest.CollateralReporter
	for _, v := range vs {
		if r, ok := v.(attest.CollateralReporter); ok {
			rs = append(rs, r)
		}
	}
	if d.coll.bundle != nil {
		rs = append(rs, d.coll.bundle)
	}
	return metrics.RegisterCollateral(d.registry, nil, nil, rs...)
}

// collateralChecks is the release-time check: the security team's revocations, then each
// verifier's recheck of the claims against the collateral it holds now (an AMD CRL refreshed
// since the token was issued).
type collateralChecks struct {
	revocations service.RevocationChecker
	rechecks    []attest.ClaimsRechecker
}

func (c collateralChecks) Check(cl *attest.Claims) error {
	if err := c.revocations.Check(cl); err != nil {
		return err
	}
	now := time.Now()
	for _, r := range c.rechecks {
		if err := r.RecheckClaims(cl, now); err != nil {
			return err
		}
	}
	return nil
}

// releaseChecks wraps the revocation list with the verifiers' collateral rechecks.
func (d *Daemon) releaseChecks(vs []attest.Verifier) service.RevocationChecker {
	c := collateralChecks{revocations: d.revoked}
	for _, v := range vs {
		if r, ok := v.(attest.ClaimsRechecker); ok {
			c.rechecks = append(c.rechecks, r)
		}
		if r, ok := v.(attest.CollateralRefresher); ok {
			d.coll.refreshers = append(d.coll.refreshers, r)
		}
	}
	return c
}

// collateralRefreshTick is how often the verifiers are asked to refresh what is due; each
// refreshes only collateral older than its own refresh interval.
const collateralRefreshTick = time.Minute

// refreshCollateral refreshes the verifiers' collateral on a schedule until ctx ends, so that
// collateral is fresh (and a revocation reaches outstanding tokens) without waiting for an
// attestation to ask.
func (d *Daemon) refreshCollateral(ctx context.Context) {
	if len(d.coll.refreshers) == 0 {
		return
	}
	t := time.NewTicker(collateralRefreshTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, r := range d.coll.refreshers {
				rctx, cancel := context.WithTimeout(ctx, collateralRefreshTick)
				r.RefreshCollateral(rctx, now)
				cancel()
			}
		}
	}
}
