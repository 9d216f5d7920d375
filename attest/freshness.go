package attest

import (
	"context"
	"errors"
	"time"
)

// Collateral freshness shared by the TEE schemes (issue 16): what a verifier reports about the
// collateral it holds, and the high-water mark that replicas share so that none accepts
// collateral older than another has seen.

// ErrOlderCollateral: collateral older than the newest seen, by this verifier or (through a
// HighWater) by another replica.
var ErrOlderCollateral = errors.New("collateral older than the newest seen")

// CollateralAge is one item of collateral a verifier holds, for metrics and `trustctl status`.
type CollateralAge struct {
	// TEE is the scheme's name ("sev-snp", "tdx", ...).
	TEE TEE
	// Platform names the platform: an FMSPC and CA for Intel, a product line for AMD.
	Platform string
	// Item is the collateral item ("crl-vcek", "tcb-info", ...).
	Item string
	// FetchedAt is when the item in use was fetched (or read from a collateral directory).
	FetchedAt time.Time
	// Issued is the item's own issue date (CRL thisUpdate, TCB info issueDate); zero if unknown.
	Issued time.Time
	// Failing is true while the last refresh failed and the last good item serves.
	Failing bool
}

// CollateralReporter is implemented by verifiers that refresh collateral.
type CollateralReporter interface {
	CollateralAges() []CollateralAge
}

// HighWater is a monotonic mark of collateral versions shared by replicas (trustd keeps it in
// PostgreSQL when configured). Advance records that key (for example "sev-snp/Milan/crl-vcek")
// was accepted at version (issued, number) and fails with an error wrapping ErrOlderCollateral
// when a newer version of key was recorded before (a number of -1 means none). Any other error
// is a failure to reach the store, and the caller fails closed.
type HighWater interface {
	Advance(ctx context.Context, key string, issued time.Time, number int64) error
}

// CollateralRefresher is implemented by verifiers that refresh collateral: trustd calls it on a
// schedule so that collateral is refreshed even while no attestation asks for it (a revocation
// then reaches outstanding tokens through ClaimsRechecker within one interval).
type CollateralRefresher interface {
	RefreshCollateral(ctx context.Context, now time.Time)
}

// ClaimsRechecker is implemented by verifiers that can tell, from claims they issued and the
// collateral they hold now, that the evidence would no longer verify (an AMD CRL that now
// revokes the chip's ASK). Every release asks it; it must not block on the network.
type ClaimsRechecker interface {
	RecheckClaims(c *Claims, now time.Time) error
}
