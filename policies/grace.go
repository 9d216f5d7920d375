package policies

import (
	"fmt"
	"time"
)

// MaxTCBRecoveryGrace is the longest grace a policy may give a TCB recovery: Intel's TCB info
// is issued for 30 days.
const MaxTCBRecoveryGrace = 30 * 24 * time.Hour

// Grace is a policy's spec.require.tcbRecoveryGrace: a Go duration ("72h") from 0 to
// MaxTCBRecoveryGrace. When Intel publishes a TCB recovery (TCB info with a higher
// tcbEvaluationDataNumber), a platform whose TCB status got worse only because of it is
// appraised under the status of the previous TCB info, with a warning in the audit record,
// until the grace has passed since trustd first accepted the newer TCB info. Zero (the
// default) enforces the new status at once. A revoked PCK, status Revoked, a CRL, an older
// TCB info or a debug guest are never graced.
type Grace time.Duration

// UnmarshalText implements encoding.TextUnmarshaler; the range is checked with the policy.
func (g *Grace) UnmarshalText(b []byte) error {
	d, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("tcbRecoveryGrace: %q is not a duration such as 72h", b)
	}
	*g = Grace(d)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (g Grace) MarshalText() ([]byte, error) { return []byte(time.Duration(g).String()), nil }

// TCBRecoveryGrace is the grace the current bundle's policy gives a TCB recovery; zero for an
// unknown policy.
func (b *Bundle) TCBRecoveryGrace(policy string) time.Duration {
	if p := b.Policy(policy); p != nil {
		return time.Duration(p.Spec.Require.TCBRecoveryGrace)
	}
	return 0
}
