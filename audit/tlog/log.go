package tlog

import (
	"context"
	"errors"
	"net/http"

	"github.com/medicus-cloud/trust/audit"
)

// Log is an audit log as trustd uses it, whatever stores it: the storage drivers
// (audit/storage/posix, audit/storage/postgres) implement it, and tlogtest checks that they
// keep its contract.
type Log interface {
	// Append writes r and returns its index once it is durable: a crash after Append returns
	// loses nothing, and a tree head covering the record is signed. Concurrent calls share
	// one commit. An error means the record is not acknowledged: ErrUnwritable when the
	// storage failed, ErrClosed after Close, audit.ErrInvalidRecord for a record that cannot be
	// encoded. A cancelled ctx returns its error; the record may still be logged.
	Append(ctx context.Context, r *audit.Record) (uint64, error)
	// Handler serves the log read-only at the C2SP tlog-tiles paths; mount it with
	// http.StripPrefix.
	Handler() http.Handler
	// VerifierKey is the note verifier key auditors check checkpoints with.
	VerifierKey() string
	// Origin is the log's checkpoint origin line.
	Origin() string
	// Close waits for pending appends and releases the storage.
	Close() error
}

// Errors of the storage drivers. The service maps ErrUnwritable and ErrClosed to Unavailable
// (nothing is released), audit.ErrInvalidRecord to Internal, ErrCorrupt to a failed start.
var (
	ErrUnwritable = errors.New("audit log unwritable")
	ErrClosed     = errors.New("audit log closed")
	ErrCorrupt    = errors.New("audit log corrupt")
)

// DefaultOrigin is the checkpoint origin (and note key name) of a new log when none is given.
const DefaultOrigin = "medicus.cloud/trust/audit"

// DefaultMaxBatch is how many records one group commit writes at most.
const DefaultMaxBatch = 1024
