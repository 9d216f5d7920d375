package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/tlog"
)

// querier is what reading needs: a pool for the handler, the append transaction for reloading
// the tree edge.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// reader returns the tlog-tiles objects of the log in the database q reads.
func reader(q querier) tlog.ObjectReader {
	return func(ctx context.Context, p string) ([]byte, error) {
		if p == "checkpoint" {
			var cp []byte
			err := q.QueryRow(ctx, `SELECT checkpoint FROM audit_head`).Scan(&cp)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
			}
			return cp, err
		}
		level, index, width, err := tlog.ParseTilePath(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
		}
		if width == 0 {
			width = tlog.TileWidth
		}
		if level >= 0 {
			return readHashTile(ctx, q, p, level, index, width)
		}
		return readBundle(ctx, q, p, index, width)
	}
}

// readHashTile returns the first width hashes of a tile: tiles only grow, so a partial tile of
// an older checkpoint is a prefix of what is stored now.
func readHashTile(ctx context.Context, q querier, p string, level int, index uint64, width int) ([]byte, error) {
	if index > maxIndex {
		return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	}
	var b []byte
	err := q.QueryRow(ctx, `SELECT data FROM audit_tiles WHERE level = $1 AND idx = $2`, int16(level), int64(index)).Scan(&b)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	case err != nil:
		return nil, err
	case len(b) < width*tlog.HashSize:
		return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	}
	return b[:width*tlog.HashSize], nil
}

// maxIndex keeps tile and entry indices within bigint.
const maxIndex = 1<<63/tlog.TileWidth - 1

// readBundle builds entry bundle index of the given width from the records. It exists once
// the tree covers it; a record missing or altered in the table then shows as a bundle that
// does not match its hashes, which auditors report by entry.
func readBundle(ctx context.Context, q querier, p string, index uint64, width int) ([]byte, error) {
	if index > maxIndex {
		return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	}
	start := int64(index) * tlog.TileWidth
	var size int64
	err := q.QueryRow(ctx, `SELECT size FROM audit_head`).Scan(&size)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && size < start+int64(width)) {
		return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, `SELECT idx, data FROM audit_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx`, start, start+int64(width))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []byte
	for rows.Next() {
		var (
			i int64
			e []byte
		)
		if err := rows.Scan(&i, &e); err != nil {
			return nil, err
		}
		if len(e) > audit.MaxRecordSize {
			return nil, fmt.Errorf("%s: entry %d is %d bytes, more than %d", p, i, len(e), audit.MaxRecordSize)
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(e)))
		out = append(out, e...)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
