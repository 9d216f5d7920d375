package audit

import (
	"encoding/json"
	"time"

	"github.com/medicus-cloud/trust/release"
)

// Events recorded.
const (
	EventAttest          = "attest"
	EventGetSecret       = "get_secret"
	EventGenerateDataKey = "generate_data_key"
	EventUnwrapDataKey   = "unwrap_data_key"
	// EventAttestUnverified summarizes the Attest calls of one source, within one interval,
	// whose evidence failed verification: Count of them from Time until Until, with the first
	// one's Reason. Such calls issue nothing, so they are not recorded one by one.
	EventAttestUnverified = "attest_unverified"
)

// Verdicts recorded: the outcomes of package release.
const (
	VerdictAllow = string(release.Allow)
	VerdictDeny  = string(release.Deny)
	VerdictError = string(release.Error)
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
	// PolicyDigest is the digest of the policy bundle that decided. For a release, that is the
	// bundle active at release time, and TokenPolicyDigest the one the result token was issued
	// under (they differ after a reload).
	PolicyDigest      string `json:"policy_digest,omitempty"`
	TokenPolicyDigest string `json:"token_policy_digest,omitempty"`
	// Names released (or asked for, when denied).
	Names []string `json:"names,omitempty"`
	// ContextDigest is the keyed digest of the canonical key context of a data-key release
	// (ContextDigest in contextkey.go): without the deployment's context key nobody can tell
	// which context, tenant or case it stands for.
	ContextDigest string `json:"context_digest,omitempty"`
	// Caller is the peer address; TokenID the result token's ID that authorised a release.
	Caller  string `json:"caller,omitempty"`
	TokenID string `json:"token_id,omitempty"`
	// Count and Until are set on summaries (EventAttestUnverified): how many calls the record
	// stands for, and the end of the interval that began at Time.
	Count uint64    `json:"count,omitempty"`
	Until time.Time `json:"until,omitzero"`
	// Patient-data duties (docs/consent.md). Purposes are those the grant required; ConsentID
	// and ConsentDigest identify the consent statement (its "jti" and the SHA-256 of it as
	// sent), never its content. BreakGlassID names the approved break-glass a release used, or
	// the request an admin record is about; ReasonDigest is the keyed digest (per tenant, as
	// ContextDigest) of a break-glass reason, which stays in trustd's admin-only state.
	Purposes      []string `json:"purposes,omitempty"`
	ConsentID     string   `json:"consent_id,omitempty"`
	ConsentDigest string   `json:"consent_digest,omitempty"`
	BreakGlassID  string   `json:"break_glass_id,omitempty"`
	ReasonDigest  string   `json:"reason_digest,omitempty"`
	Outcome       string   `json:"outcome,omitempty"`
	// Claims are the normalized claims of verified evidence (attest records), as JSON of
	// attest.Claims without report_data: exactly what a policy can read, so that
	// `trustctl policy dryrun` can replay a candidate bundle. They hold measurements, TCB
	// versions and platform identity, never secrets or context values.
	Claims json.RawMessage `json:"claims,omitempty"`
	// TenantDigest is the keyed digest of the release context's tenant alone (ContextDigest of
	// {"tenant": T}), so that reports can group releases by tenant for whoever holds the key.
	TenantDigest string `json:"tenant_digest,omitempty"`
	// Shadow is the would-be decision of a candidate bundle run in shadow mode: recorded,
	// never enforced.
	Shadow *ShadowDecision `json:"shadow,omitempty"`
	// Warnings are what a decision allowed only provisionally, for example a platform an Intel
	// TCB recovery downgraded, appraised under its previous status within the policy's
	// tcbRecoveryGrace. They name statuses, advisories and times, never secrets.
	Warnings []string `json:"warnings,omitempty"`
}

// ShadowDecision is what a candidate bundle decided beside the active one.
type ShadowDecision struct {
	PolicyDigest string `json:"policy_digest"`
	Policy       string `json:"policy,omitempty"`
	Verdict      string `json:"verdict"`
	Reason       string `json:"reason,omitempty"`
}
