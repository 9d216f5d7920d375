package postgres

// schemaLock is the pg_advisory_xact_lock key that serializes schema creation between replicas
// starting at once ("medaudit" in ASCII).
const schemaLock = 0x6d65646175646974

// schema creates the log's tables. audit_head holds one row: the tree size and the signed
// checkpoint, which every append locks. audit_entries holds the records by index, audit_tiles
// the hash tiles (level >= 0) at their current width; entry bundles are built from
// audit_entries when served.
const schema = `
CREATE TABLE IF NOT EXISTS audit_head (
	id         boolean PRIMARY KEY DEFAULT true CHECK (id),
	size       bigint NOT NULL CHECK (size >= 0),
	checkpoint bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_entries (
	idx  bigint PRIMARY KEY CHECK (idx >= 0),
	data bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_tiles (
	level smallint NOT NULL CHECK (level >= 0),
	idx   bigint NOT NULL CHECK (idx >= 0),
	data  bytea NOT NULL,
	PRIMARY KEY (level, idx)
);
`
