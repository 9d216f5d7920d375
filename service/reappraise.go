package service

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/ear"
	"github.com/medicus-cloud/trust/policies"
)

// Every release re-appraises (issue 16): the token carries the verified claims it was issued
// for, and each release re-runs the current bundle's policy and the revocation list against
// them. The claims travel in the token, signed with it, rather than in a server-side cache keyed
// by token ID, because replicas share only the token keys: any replica must be able to decide
// a release on a token another replica issued, also right after a restart, without a round
// trip to shared state on the hot path. The cost is a few hundred bytes per token and one CBOR
// decode per release (see BenchmarkRatioReleaseReappraise).

// RevocationChecker refuses claims the security team revoked (package revoke implements it).
type RevocationChecker interface {
	Check(c *attest.Claims) error
}

// errAttestAgain: the token cannot vouch any more (lease over, no appraised claims); the client
// must attest again. It maps to Unauthenticated, on which the SDK attests again on its own.
var errAttestAgain = errors.New("attest again")

// appraised is the compact wire form of attest.Claims inside a token (claim -70010).
type appraised struct {
	TEE          string            `cbor:"1,keyasint"`
	Measurement  []byte            `cbor:"2,keyasint,omitempty"`
	Measurements map[string][]byte `cbor:"3,keyasint,omitempty"`
	Config       map[string][]byte `cbor:"4,keyasint,omitempty"`
	TCB          map[string]uint64 `cbor:"5,keyasint,omitempty"`
	TCBStatus    string            `cbor:"6,keyasint,omitempty"`
	Advisories   []string          `cbor:"7,keyasint,omitempty"`
	Flags        uint8             `cbor:"8,keyasint,omitempty"` // 1 debug, 2 migration
	ReportData   []byte            `cbor:"9,keyasint,omitempty"`
	Platform     map[string]string `cbor:"10,keyasint,omitempty"`
	Attributes   map[string]uint64 `cbor:"11,keyasint,omitempty"`
	PlatformSMT  string            `cbor:"12,keyasint,omitempty"`
	PolicySMT    *bool             `cbor:"13,keyasint,omitempty"`
	// Components are the boot components of a replayed event log (policies name them).
	Components map[string][]byte `cbor:"14,keyasint,omitempty"`
}

var (
	appraisedEnc, _ = cbor.CoreDetEncOptions().EncMode()
	appraisedDec, _ = cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxMapPairs: 256, MaxArrayElements: 256}.DecMode()
)

func hexMap(m map[string]attest.Hex) map[string][]byte {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func fromHexMap(m map[string][]byte) map[string]attest.Hex {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]attest.Hex, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// encodeAppraised returns the token form of c.
func encodeAppraised(c *attest.Claims) ([]byte, error) {
	a := appraised{TEE: string(c.TEE), Measurement: c.Measurement, Measurements: hexMap(c.Measurements), Config: hexMap(c.Config),
		TCB: c.TCB, TCBStatus: c.TCBStatus, Advisories: c.Advisories, ReportData: c.ReportData, Platform: c.Platform, Attributes: c.Attributes,
		PlatformSMT: string(c.PlatformSMTEnabled), PolicySMT: c.PolicySMTAllowed, Components: hexMap(c.Components)}
	if c.Debug {
		a.Flags |= 1
	}
	if c.Migration {
		a.Flags |= 2
	}
	return appraisedEnc.Marshal(&a)
}

// decodeAppraised parses the token form; the token's signature already vouches for it.
func decodeAppraised(b []byte) (*attest.Claims, error) {
	var a appraised
	if err := appraisedDec.Unmarshal(b, &a); err != nil {
		return nil, err
	}
	if a.Flags > 3 {
		return nil, fmt.Errorf("flags %#x", a.Flags)
	}
	return &attest.Claims{TEE: attest.TEE(a.TEE), Measurement: a.Measurement, Measurements: fromHexMap(a.Measurements),
		Config: fromHexMap(a.Config), TCB: a.TCB, TCBStatus: a.TCBStatus, Advisories: a.Advisories, Debug: a.Flags&1 != 0,
		Migration: a.Flags&2 != 0, PlatformSMTEnabled: attest.Tristate(a.PlatformSMT), PolicySMTAllowed: a.PolicySMT,
		ReportData: a.ReportData, Platform: maps.Clone(a.Platform), Attributes: a.Attributes, Components: fromHexMap(a.Components)}, nil
}

// reappraise decides whether the current bundle and revocation list still vouch for the
// workload a token was issued to, and returns the lease of a release on it.
func (s *Service) reappraise(bundle *policies.Bundle, tc *ear.Claims, rec *audit.Record) (time.Time, error) {
	if s.noReappraise {
		return time.Unix(tc.Expiry, 0), nil
	}
	if len(tc.Appraised) == 0 {
		return time.Time{}, fmt.Errorf("%w: the token carries no appraised claims (issued by an older trustd)", errAttestAgain)
	}
	c, err := decodeAppraised(tc.Appraised)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: the token's appraised claims do not parse: %v", errAttestAgain, err)
	}
	if !policies.SameImage(c, attest.TEE(tc.TEE), tc.Measurement) {
		return time.Time{}, fmt.Errorf("%w: the token's appraised claims name another image", errAttestAgain)
	}
	// The TCB status under the collateral in use now, before the policy reads it (tcbgrace.go).
	warning, err := s.updateTCB(bundle, tc.Policy, c)
	if err != nil {
		return time.Time{}, err
	}
	if err := s.o.Baseline.Check(c); err != nil {
		return time.Time{}, err
	}
	if err := bundle.Reappraise(tc.Policy, c); err != nil {
		return time.Time{}, err
	}
	if s.o.Revocations != nil {
		if err := s.o.Revocations.Check(c); err != nil {
			return time.Time{}, err
		}
	}
	lease := bundle.LeaseEnd(tc.Policy, time.Unix(tc.IssuedAt, 0), time.Unix(tc.Expiry, 0))
	if !s.o.Now().Before(lease) {
		return time.Time{}, fmt.Errorf("%w: the lease of policy %q ended at %s", errAttestAgain, tc.Policy, lease.UTC().Format(time.RFC3339))
	}
	s.warn(c.TEE, warning, rec) // only once the claims passed every check
	return lease, nil
}
