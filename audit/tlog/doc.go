// Package tlog is the audit log itself, apart from where it is stored: an RFC 6962 Merkle tree
// of encoded records in the C2SP tlog-tiles layout (entry bundles and hash tiles, 256 wide),
// with C2SP tlog-checkpoints signed as C2SP signed-notes (Ed25519).
//
// It holds what every storage driver shares: the tile geometry and paths, checkpoints and
// their signatures, the right edge of the tree (Edge: what the next append needs, and the tiles
// an append changes), the single writer that batches concurrent appends (GroupCommit), the
// read-only HTTP handler, and the proofs an auditor checks (Scan, InclusionProof,
// ConsistencyProof) over any ObjectReader: a directory, an HTTP mirror, a database.
//
// The drivers live in audit/storage/posix (a directory on local disk) and
// audit/storage/postgres (a database shared by replicas); both implement Log and pass the
// conformance suite in audit/tlog/tlogtest. Records are package audit's; auditors use
// audit/auditor.
package tlog
