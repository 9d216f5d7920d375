package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"

	"github.com/medicus-cloud/trust/audit/tlog"
)

// Export writes the log as of its current checkpoint to dir in the tlog-tiles layout that
// auditor.Source reads from a directory (and tlog.DirHandler serves): "checkpoint",
// "tile/<L>/<N>[.p/<W>]" and "tile/entries/<N>[.p/<W>]". It reads one consistent snapshot
// and does not check what it copies: run auditor.Verify on the result.
func (l *Log) Export(ctx context.Context, dir string) error {
	tx, err := l.rpool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return fmt.Errorf("postgres: %w: %v", tlog.ErrUnwritable, err)
	}
	defer tx.Rollback(ctx)
	get := reader(tx)
	cpb, err := get(ctx, "checkpoint")
	if err != nil {
		return fmt.Errorf("postgres: export: %v", err)
	}
	cp, err := tlog.OpenCheckpoint(cpb, l.vkey)
	if err != nil {
		return fmt.Errorf("postgres: export: %w", err)
	}
	write := func(p string, b []byte) error {
		fp := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
			return err
		}
		return os.WriteFile(fp, b, 0o644)
	}
	const w = tlog.TileWidth
	for level := -1; ; level++ {
		n := cp.Size >> uint(8*max(level, 0))
		if n == 0 {
			break
		}
		for t := uint64(0); t*w < n; t++ {
			width := int(min(n-t*w, w))
			p := tlog.TilePath(level, t, width)
			b, err := get(ctx, p)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("postgres: export: %s missing", p)
			}
			if err != nil {
				return fmt.Errorf("postgres: export: %v", err)
			}
			if err := write(p, b); err != nil {
				return fmt.Errorf("postgres: export: %v", err)
			}
		}
	}
	// The checkpoint last, so that a reader of dir never sees one its tiles do not cover.
	if err := write("checkpoint", cpb); err != nil {
		return fmt.Errorf("postgres: export: %v", err)
	}
	return nil
}
