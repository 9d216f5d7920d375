package audit

import "time"

// Events recorded.
const (
	EventAttest          = "attest"
	EventGetSecret       = "get_secret"
	EventGenerateDataKey = "generate_data_key"
	EventUnwrapDataKey   = "unwrap_data_key"
)

// Verdicts recorded.
const (
	VerdictAllow = "allow"
	VerdictDeny  = "deny"
	VerdictError = "error"
)

// Record is one decision. It never holds key material or patient data: names of what was
// released, never values; context digests, never context values.
type Record struct {
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id"`
	Event     string    `json:"event"`
	TEE       string    `json:"tee,omitempty"`
	// Platform identity: chip_id, fmspc, product, signer.
	Platform map[string]string `json:"platform,omitempty"`
	// Measurement is the launch measurement in lowercase hex; Measurements the others by name.
	Measurement  string            `json:"measurement,omitempty"`
	Measurements map[string]string `json:"measurements,omitempty"`
	Verdict      string            `json:"verdict"`
	Reason       string            `json:"reason,omitempty"`
	Policy       string            `json:"policy,omitempty"`
	PolicyDigest string            `json:"policy_digest,omitempty"`
	// Names released (or asked for, when denied).
	Names []string `json:"names,omitempty"`
	// ContextDigest is the hex SHA-256 of the canonical key context of a data-key release.
	ContextDigest string `json:"context_digest,omitempty"`
	// Caller is the peer address; TokenID the result token's ID that authorised a release.
	Caller  string `json:"caller,omitempty"`
	TokenID string `json:"token_id,omitempty"`
}
