// Package audit is the tamper-evident log of every attestation decision and key release.
//
// Each decision is a Record, encoded canonically (see Marshal) and appended as a leaf of an
// RFC 6962 Merkle tree. The tree is stored in the C2SP tlog-tiles layout (entry bundles and hash
// tiles, 256 wide) with a C2SP tlog-checkpoint signed as a C2SP signed-note (Ed25519). An auditor
// needs nothing but the tiles, a checkpoint and the log's verifier key.
//
// Writers: OpenLocal opens the embedded log on local disk; (*Log).Append returns only once the
// record is durable, committing concurrent callers together; (*Log).Handler serves the log
// read-only at tlog-tiles paths.
//
// Auditors: Verify, Prove, Consistency, Search and Witness check a log from a directory or a URL.
// They write their results to an io.Writer, and errors name the first bad entry (*EntryError) or
// the checkpoint at fault (ErrCheckpoint, ErrRootMismatch, ErrInconsistent).
//
// The package does not log, and records never hold key material or patient data.
package audit
