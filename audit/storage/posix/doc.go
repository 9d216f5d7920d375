// Package posix stores the audit log in a directory on local disk: the tlog-tiles tree that
// auditors copy and trustd serves, a signed checkpoint, the note signing key, and a journal
// that makes each group commit durable with one fdatasync (see audit/README.md for the layout
// and the crash-recovery rules).
//
// Open opens (and on first use creates) the log; (*Log).Append returns only once the record is
// durable, committing concurrent callers together; its tiles and checkpoint are published in
// the background ((*Log).Publish waits for them); (*Log).Handler serves the log read-only at
// tlog-tiles paths. *Log implements tlog.Log and passes tlogtest's conformance suite. One
// process at a time may have a directory open (ErrLocked).
package posix
