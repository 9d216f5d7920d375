// Package audit is the record of every attestation decision and key release: what trustd
// appends to its tamper-evident log, one Record per decision, encoded canonically (Marshal,
// ParseRecord), with context digests keyed by a ContextKey. It imports nothing of the log, so
// that any package can build records cheaply.
//
// The log itself is elsewhere: audit/tlog (the Merkle tree in the C2SP tlog-tiles layout, its
// checkpoints and proofs), audit/storage/posix and audit/storage/postgres (where it is stored)
// and audit/auditor (the offline checks trustctl's "audit" commands run).
//
// Records never hold key material or patient data.
package audit
