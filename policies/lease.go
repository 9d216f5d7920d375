package policies

import (
	"fmt"
	"time"
)

// MaxLease is the longest lease a policy may set: the longest token lifetime trustd issues.
const MaxLease = time.Hour

// Lease is a policy's spec.lease: a Go duration ("90s", "10m") between one second and MaxLease.
// Each release carries a lease that ends at the token's expiry or at the token's issue time plus
// the lease of the policy, whichever comes first; past it trustd refuses releases on that token
// and the SDK drops its cached keys and attests again, so that fresh evidence (and fresh
// collateral) vouches for the workload at least once a lease.
type Lease time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *Lease) UnmarshalText(b []byte) error {
	d, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("lease: %q is not a duration such as 90s or 10m", b)
	}
	if d < time.Second || d > MaxLease {
		return fmt.Errorf("lease: %v outside [1s, %v]", d, MaxLease)
	}
	*l = Lease(d)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (l Lease) MarshalText() ([]byte, error) { return []byte(time.Duration(l).String()), nil }

// LeaseEnd returns when the lease of a release on a token ends: the token's expiry, or earlier
// when the current bundle's policy sets a shorter lease from the token's issue time. An unknown
// policy returns expiry; Reappraise denies it.
func (b *Bundle) LeaseEnd(policy string, issuedAt, expiry time.Time) time.Time {
	p := b.Policy(policy)
	if p == nil || p.Spec.Lease <= 0 {
		return expiry
	}
	if end := issuedAt.Add(time.Duration(p.Spec.Lease)); end.Before(expiry) {
		return end
	}
	return expiry
}
