package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/collateral"
	"github.com/medicus-cloud/trust/collateral/bundlepg"
	"github.com/medicus-cloud/trust/internal/every"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/service"
)

// defaultBundlePoll is how often a replica looks for a bundle another replica imported.
const defaultBundlePoll = 10 * time.Second

// bundleImporter applies collateral bundles at run time (Admin.ImportCollateral, and bundles
// other replicas imported, through PostgreSQL): verified under the operator keys, never older
// than the last import, extracted beside the bundle directory and swapped in, then loaded by
// the offline verifiers that hold collateral in memory.
type bundleImporter struct {
	// mu serializes imports: the record, the directory and the verifiers move together.
	mu    sync.Mutex
	keys  policies.TrustKeys
	paths bundlePaths
	age   *bundleAge
	log   *slog.Logger
	// loaders are the verifiers that read the bundle into memory (Intel); SEV-SNP reads the
	// directory at each verification. Set before serving, read-only after.
	loaders []attest.BundleLoader
	// shared is the replicas' bundle row, nil without the PostgreSQL audit backend.
	shared *bundlepg.Store
	poll   time.Duration
}

var _ service.CollateralImporter = (*bundleImporter)(nil)

// openImported is startup without collateral_bundle.file: the bundle imported last (at run time)
// is verified again under the operator keys and kept.
func (d *Daemon) openImported(ctx context.Context, env Env) error {
	keys, err := readOperatorKeys(d.cfg.CollateralBundle.KeysFile)
	if err != nil {
		return err
	}
	paths := bundlePathsIn(d.cfg.DataDir)
	d.coll.bundle = &bundleAge{}
	rec, err := paths.record()
	if err != nil {
		return err
	}
	if rec.Digest != "" {
		data, err := readBounded(paths.file, collateral.MaxBundleSize)
		if err != nil {
			return fmt.Errorf("the bundle imported last: %w", err)
		}
		b, kid, err := collateral.Open(data, keys)
		if err != nil {
			return fmt.Errorf("%s: %w", paths.file, err)
		}
		if sum := collateral.Digest(data); hex.EncodeToString(sum[:]) != rec.Digest {
			return fmt.Errorf("%s: not the bundle %s records", paths.file, paths.rec)
		}
		d.coll.bundle.set(b.Issued, kid)
	}
	d.coll.bundleDir = paths.dir
	return d.openImporter(ctx, env)
}

// openImporter makes the bundle importable at run time and, with PostgreSQL, applies a newer
// bundle another replica imported before the verifiers are built.
func (d *Daemon) openImporter(ctx context.Context, env Env) error {
	bc := d.cfg.CollateralBundle
	keys, err := readOperatorKeys(bc.KeysFile)
	if err != nil {
		return err
	}
	paths := bundlePathsIn(d.cfg.DataDir)
	d.coll.bundleDir = paths.dir
	if d.coll.bundle == nil {
		d.coll.bundle = &bundleAge{}
	}
	im := &bundleImporter{keys: keys, paths: paths, age: d.coll.bundle, log: d.log, poll: bc.PollInterval}
	if im.poll <= 0 {
		im.poll = defaultBundlePoll
	}
	if d.cfg.Audit.Backend == "postgres" {
		dsn, err := d.auditDSN(env)
		if err != nil {
			return err
		}
		if im.shared, err = bundlepg.Open(ctx, dsn); err != nil {
			return err
		}
		d.closers = append(d.closers, im.shared.Close)
		if err := im.sync(ctx); err != nil {
			d.log.Warn("collateral bundle of the other replicas not applied", "err", err)
		}
	}
	d.coll.imports = im
	return nil
}

// collateralImporter is the run-time import for the admin API; nil without operator keys.
func (d *Daemon) collateralImporter() service.CollateralImporter {
	if d.coll.imports == nil {
		return nil
	}
	return d.coll.imports
}

// OpenBundle implements service.CollateralImporter.
func (im *bundleImporter) OpenBundle(data []byte) (*service.OpenedBundle, error) {
	b, kid, err := collateral.Open(data, im.keys)
	if err != nil {
		return nil, err
	}
	sum := collateral.Digest(data)
	return &service.OpenedBundle{Bundle: b, Data: data, KeyID: kid, Digest: hex.EncodeToString(sum[:])}, nil
}

// ApplyBundle implements service.CollateralImporter. With PostgreSQL the bundle is stored for
// the other replicas first, so that a bundle older than one imported anywhere is refused.
func (im *bundleImporter) ApplyBundle(ctx context.Context, b *service.OpenedBundle) (bool, error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	prev, err := im.paths.record()
	if err != nil {
		return false, err
	}
	if err := prev.admits(b.Bundle.Issued, b.Digest); err != nil {
		return false, err
	}
	if im.shared != nil {
		if err := im.shared.Put(ctx, bundlepg.Stored{Issued: b.Bundle.Issued, Digest: b.Digest, KeyID: b.KeyID, Data: b.Data}); err != nil {
			return false, err
		}
	}
	if b.Digest == prev.Digest {
		return false, nil
	}
	return true, im.applyLocked(b)
}

// applyLocked extracts b, has every loader read it (restoring those that did when one fails),
// swaps it in and records it.
func (im *bundleImporter) applyLocked(b *service.OpenedBundle) error {
	check := func(stage string) error {
		for i, l := range im.loaders {
			if err := l.LoadBundle(stage); err != nil {
				for _, done := range im.loaders[:i] {
					if rerr := done.LoadBundle(im.paths.dir); rerr != nil {
						im.log.Error("collateral bundle: restoring the previous bundle failed", "err", rerr)
					}
				}
				return fmt.Errorf("loading the bundle: %w", err)
			}
		}
		return nil
	}
	rec := bundleRecord{Issued: b.Bundle.Issued, Digest: b.Digest, KeyID: b.KeyID}
	if err := im.paths.install(b.Bundle, b.Data, rec, check); err != nil {
		return err
	}
	im.age.set(b.Bundle.Issued, b.KeyID)
	im.log.Info("collateral bundle imported", "issued", b.Bundle.Issued, "kid", b.KeyID, "sha256", b.Digest, "files", len(b.Bundle.Files))
	return nil
}

// sync applies the replicas' bundle when it is not the one in use, after verifying it under
// this trustd's own keys: the database is never trusted for content.
func (im *bundleImporter) sync(ctx context.Context) error {
	if im.shared == nil {
		return nil
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	prev, err := im.paths.record()
	if err != nil {
		return err
	}
	st, err := im.shared.Latest(ctx, prev.Digest)
	if err != nil || st == nil {
		return err
	}
	if st.Issued.Before(prev.Issued) {
		return nil // this replica imported a newer one from its configuration file
	}
	ob, err := im.OpenBundle(st.Data)
	if err != nil {
		return fmt.Errorf("the bundle in the database: %w", err)
	}
	if ob.Digest != st.Digest {
		return errors.New("the bundle in the database does not match its digest")
	}
	if err := prev.admits(ob.Bundle.Issued, ob.Digest); err != nil {
		return err
	}
	return im.applyLocked(ob)
}

// run polls the replicas' bundle until ctx ends.
func (im *bundleImporter) run(ctx context.Context) {
	if im == nil || im.shared == nil {
		return
	}
	every.Run(ctx, im.poll, func(ctx context.Context) error {
		sctx, cancel := context.WithTimeout(ctx, im.poll)
		defer cancel()
		return im.sync(sctx)
	}, func(err error) { im.log.Warn("collateral bundle of the other replicas not applied", "err", err) })
}
