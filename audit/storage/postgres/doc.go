// Package postgres is the audit log kept in PostgreSQL, for several trustd replicas behind one
// address that share nothing but Vault and this log.
//
// Every replica opens the same database with the same note signing key. Appends from all of them
// serialize on the one-row tree head (locked FOR UPDATE); inside one replica concurrent appends
// share one transaction (group commit). A transaction inserts the records, updates the hash
// tiles and replaces the signed checkpoint together, so Append returns an index only once the
// record and a checkpoint covering it are committed; a replica that dies mid-transaction leaves
// nothing behind, and an error means nothing was acknowledged.
//
// The tree, the checkpoints and the served layout (C2SP tlog-tiles) are package tlog's, the
// records package audit's, as for the posix driver beside it: Log.Handler serves the log
// read-only from the database, and package auditor (and trustctl audit ...) checks it as it
// checks a posix log. Export writes the same layout to a directory. Both drivers implement
// tlog.Log and pass tlogtest's conformance suite.
//
// The package is not a general key-value store for tiles and does not manage the database: it creates
// its three tables (audit_head, audit_entries, audit_tiles) if they are missing, nothing else.
package postgres

import ()
