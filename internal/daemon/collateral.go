package daemon

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
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
	// With keys and no file, trustd keeps the bundle last imported (Admin.ImportCollateral).
	KeysFile string `yaml:"keys_file"`
	// PollInterval is how often a replica looks for a newer bundle imported on another replica
	// (PostgreSQL audit backend only); default 10s.
	PollInterval time.Duration `yaml:"poll_interval"`
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
	// imports applies bundles imported at run time (collateralimport.go); nil without
	// collateral_bundle.keys_file.
	imports *bundleImporter
}

// bundleAge reports the imported bundle's age in metrics and trustctl status; an import at run
// time updates it.
type bundleAge struct {
	mu     sync.Mutex
	issued time.Time
	kid    string
}

func (b *bundleAge) set(issued time.Time, kid string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.issued, b.kid = issued, kid
}

func (b *bundleAge) CollateralAges() []attest.CollateralAge {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.issued.IsZero() {
		return nil
	}
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
	bc := d.cfg.CollateralBundle
	if bc.File == "" && bc.KeysFile == "" {
		return nil
	}
	if bc.File == "" {
		err = d.openImported(ctx, env)
	} else {
		err = d.importBundle()
		switch {
		case errors.Is(err, errNewerImported):
			// An operator imported a newer bundle at run time and the configuration still
			// names the older file: keep the newer one rather than refuse to start.
			d.log.Warn("collateral_bundle.file is older than the bundle imported last; keeping that one", "file", bc.File, "err", err)
			err = d.openImported(ctx, env)
		case err == nil:
			err = d.openImporter(ctx, env)
		}
	}
	if err != nil {
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
	count := func(string) {}
	if d.registry != nil {
		if count, err = metrics.RegisterCollateralStoreErrors(d.registry); err != nil {
			return nil, err
		}
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

// errNewerImported: the configured bundle is older than one imported at run time, whose signed
// file the data directory keeps.
var errNewerImported = errors.New("a newer bundle was imported at run time")

// importBundle verifies the configured bundle under the operator keys, refuses it when it was
// issued before the last one imported, and extracts it into DataDir/collateral/bundle.
func (d *Daemon) importBundle() error {
	bc := d.cfg.CollateralBundle
	keys, err := readOperatorKeys(bc.KeysFile)
	if err != nil {
		return err
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
	paths := bundlePathsIn(d.cfg.DataDir)
	prev, err := paths.record()
	if err != nil {
		return err
	}
	if err := prev.admits(b.Issued, digest); err != nil {
		if _, serr := os.Stat(paths.file); b.Issued.Before(prev.Issued) && serr == nil {
			return fmt.Errorf("%w: %s: %w", errNewerImported, bc.File, err)
		}
		return fmt.Errorf("%s: %w", bc.File, err)
	}
	if digest != prev.Digest {
		if err := paths.install(b, data, bundleRecord{Issued: b.Issued, Digest: digest, KeyID: kid}, nil); err != nil {
			return err
		}
		d.log.Info("collateral bundle imported", "file", bc.File, "issued", b.Issued, "kid", kid, "files", len(b.Files))
	}
	d.coll.bundleDir = paths.dir
	d.coll.bundle = &bundleAge{issued: b.Issued, kid: kid}
	return nil
}

// readOperatorKeys reads collateral_bundle.keys_file.
func readOperatorKeys(file string) (policies.TrustKeys, error) {
	if file == "" {
		return nil, errors.New("keys_file (the operator public keys) is required")
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	keys, err := policies.ParseTrustKeys(pem)
	if err != nil {
		return nil, fmt.Errorf("keys_file: %w", err)
	}
	return keys, nil
}

// bundlePaths are where an imported bundle lives in the data directory.
type bundlePaths struct {
	root, dir, rec, file string
}

func bundlePathsIn(dataDir string) bundlePaths {
	root := filepath.Join(dataDir, "collateral")
	return bundlePaths{root: root, dir: filepath.Join(root, "bundle"), rec: filepath.Join(root, "bundle.json"),
		file: filepath.Join(root, "bundle.cose")}
}

// record is the last bundle imported; the zero record without one.
func (p bundlePaths) record() (bundleRecord, error) {
	var prev bundleRecord
	if rb, err := os.ReadFile(p.rec); err == nil {
		if err := json.Unmarshal(rb, &prev); err != nil {
			return prev, fmt.Errorf("%s: %w", p.rec, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return prev, err
	}
	return prev, nil
}

// admits is the monotonic rule: a bundle issued before the last one imported, or at the same
// time with other content, is refused (collateral.ErrOlder).
func (r bundleRecord) admits(issued time.Time, digest string) error {
	switch {
	case issued.Before(r.Issued):
		return fmt.Errorf("%w: issued %s, the bundle imported last was issued %s", collateral.ErrOlder,
			issued.Format(time.RFC3339), r.Issued.Format(time.RFC3339))
	case issued.Equal(r.Issued) && digest != r.Digest:
		return fmt.Errorf("%w: another bundle with the same issue time %s was imported", collateral.ErrOlder, issued.Format(time.RFC3339))
	}
	return nil
}

// install extracts b beside the bundle directory, lets check read the new tree (nil: no check),
// swaps it in, and then records it with its signed file (kept so that a restart without
// collateral_bundle.file verifies it again). A failure before the swap leaves the old tree.
func (p bundlePaths) install(b *collateral.Bundle, data []byte, rec bundleRecord, check func(dir string) error) error {
	if err := os.MkdirAll(p.root, 0o700); err != nil {
		return err
	}
	stage := p.dir + ".stage"
	if err := b.Extract(stage); err != nil {
		os.RemoveAll(stage)
		return fmt.Errorf("extracting: %w", err)
	}
	if check != nil {
		if err := check(stage); err != nil {
			os.RemoveAll(stage)
			return err
		}
	}
	old := p.dir + ".old"
	_ = os.RemoveAll(old)
	if err := os.Rename(p.dir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		os.RemoveAll(stage)
		return err
	}
	if err := os.Rename(stage, p.dir); err != nil {
		_ = os.Rename(old, p.dir)
		return err
	}
	_ = os.RemoveAll(old)
	if err := writeFileAtomic(p.file, data); err != nil {
		return err
	}
	rb, _ := json.Marshal(rec)
	return writeFileAtomic(p.rec, rb)
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
		if l, ok := v.(attest.BundleLoader); ok && d.coll.imports != nil {
			d.coll.imports.loaders = append(d.coll.imports.loaders, l)
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

// tcbUpdates is the release-time TCB status recomputation of every verifier that offers one
// (the Intel verifiers); each ignores claims of other TEEs.
type tcbUpdates []attest.TCBUpdater

func (u tcbUpdates) Update(c *attest.Claims, now time.Time) error {
	for _, x := range u {
		if err := x.UpdateTCB(c, now); err != nil {
			return err
		}
	}
	return nil
}

// tcbUpdaters composes the verifiers' TCB updaters; nil when none has one.
func tcbUpdaters(vs []attest.Verifier) service.ClaimsUpdater {
	var u tcbUpdates
	for _, v := range vs {
		if x, ok := v.(attest.TCBUpdater); ok {
			u = append(u, x)
		}
	}
	if len(u) == 0 {
		return nil
	}
	return u
}
