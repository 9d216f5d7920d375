package policies

import "github.com/medicus-cloud/trust/attest"

// Baseline is what trustd requires of every workload before any policy is consulted: a floor no
// policy can lower. The zero value is the production baseline.
type Baseline struct {
	// AllowDebug lets policies that say allowDebug admit debug guests (SNP guest policy DEBUG,
	// TDX TUD.DEBUG, SGX ATTRIBUTES.DEBUG), whose memory the host can read. Only trustd --dev
	// sets it; otherwise debug guests are refused for every TEE, whatever a policy says.
	AllowDebug bool
}

// Check returns a *Denial when claims fall below the baseline, nil otherwise. Callers check it
// before Evaluate, so that the denial names the baseline rather than a policy.
func (b Baseline) Check(c *attest.Claims) error {
	if c == nil {
		return ErrNoClaims
	}
	if c.Debug && !b.AllowDebug {
		return &Denial{Claim: "debug", Seen: "true", Expected: "false: trustd refuses debug guests outside --dev, whatever a policy allows"}
	}
	return nil
}
