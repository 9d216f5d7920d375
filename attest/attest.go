// Package attest verifies TEE evidence and maps it onto normalized claims.
//
// It answers one question: is this evidence authentic, and what does it say? Whether the claims
// are acceptable is for package policies to decide. Each TEE has its own subpackage (snp, tdx,
// sgx, sim) that implements Verifier and exports a Scheme: its configuration, verifier
// constructor, evidence-file loader, claim names and measurement rule. Package attest/schemes
// lists them and documents what adding a TEE takes; ParseTEE lives there.
package attest

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TEE names a kind of trusted execution environment.
type TEE string

// The TEE types of the schemes in this module. A new scheme declares its TEE constant in its own
// package (see attest/schemes), not here.
const (
	SEVSNP TEE = "sev-snp"
	TDX    TEE = "tdx"
	SGX    TEE = "sgx"
	// InsecureSimulated evidence is signed by a published key: anyone can forge it.
	InsecureSimulated TEE = "insecure-simulated"
)

// Evidence is what a TEE produced, as it came from the platform.
type Evidence struct {
	TEE TEE
	// Report is the SNP attestation report, the TDX or SGX quote, or the simulator's report.
	Report []byte
	// Certificates is the SNP extended report's certificate table, if any.
	Certificates []byte
	// Collateral carries optional endorsements by collateral-directory file name.
	Collateral map[string][]byte
}

// Options are per-verification settings. The zero value verifies now, online where the verifier
// is configured to be.
type Options struct {
	// Now is the verification time; zero means time.Now().
	Now time.Time
}

// Time returns the verification time.
func (o Options) Time() time.Time {
	if o.Now.IsZero() {
		return time.Now()
	}
	return o.Now
}

// Verifier checks that evidence is authentic (signatures, certificate chains, revocation,
// collateral) and returns its claims. It does not decide whether the claims are acceptable,
// except for checks that are part of authenticity itself (for example that the TCB in a report
// matches the TCB its signing certificate was issued for).
type Verifier interface {
	TEE() TEE
	Verify(ctx context.Context, ev *Evidence, opts Options) (*Claims, error)
}

// Claims are the normalized claims of DESIGN.md. Every verifier fills the fields its TEE has.
type Claims struct {
	TEE TEE `json:"tee"`
	// Measurement is the launch measurement: SNP MEASUREMENT, TDX MRTD, SGX MRENCLAVE.
	Measurement Hex `json:"measurement"`
	// Measurements holds further measurements: rtmr0..rtmr3, mrseam, mrsigner.
	Measurements map[string]Hex `json:"measurements,omitempty"`
	// Config holds configuration identity: host_data, id_key_digest, author_key_digest,
	// family_id, image_id, mrconfigid, mrowner, mrownerconfig, tee_tcb_svn.
	Config map[string]Hex `json:"config,omitempty"`
	// TCB holds TCB components and SVNs: bootloader, tee, snp, microcode, fmc, guest_svn, isv_svn.
	TCB map[string]uint64 `json:"tcb,omitempty"`
	// TCBStatus is Intel's TCB status for the platform, or "unknown" without collateral.
	TCBStatus  string   `json:"tcb_status,omitempty"`
	Advisories []string `json:"advisories,omitempty"`
	// Debug is set for a debug guest (SNP guest policy DEBUG, TDX TUD.DEBUG, SGX ATTRIBUTES.DEBUG):
	// the host can read its memory. Verifiers report it and never refuse on it; trustd refuses
	// debug guests outside --dev whatever a policy says.
	Debug     bool `json:"debug"`
	Migration bool `json:"migration"`
	// PlatformSMTEnabled is whether the platform runs with SMT (hyper-threading) on: SNP
	// PLATFORM_INFO.SMT_EN, TDX and SGX the PCK certificate's platform configuration. It is
	// TriUnknown when the evidence does not say (a PCK certificate without the configuration
	// extension); unknown never satisfies a requirement on it.
	PlatformSMTEnabled Tristate `json:"platform_smt_enabled"`
	// PolicySMTAllowed is SNP guest-policy bit 16 ("SMT allowed"): when false the firmware runs
	// the guest only on a platform with SMT off. Nil for other TEEs.
	PolicySMTAllowed *bool `json:"policy_smt_allowed,omitempty"`
	ReportData       Hex   `json:"report_data"`
	// Platform identity: chip_id, fmspc, product, signer.
	Platform map[string]string `json:"platform,omitempty"`
	// Attributes holds other numeric fields: vmpl, guest_policy, td_attributes, xfam, isv_prod_id.
	Attributes map[string]uint64 `json:"attributes,omitempty"`
	// Components are boot components (kernel, initrd, cmdline, shim, grub, uki.linux ...) by
	// name, each the digest the evidence's event log extended into the attested registers. Set
	// only when an event log came with the evidence and replayed to its registers.
	Components map[string]Hex `json:"components,omitempty"`
	// TCBDowngrade is set by an Intel verifier when the TCB status is worse only because newer
	// TCB info arrived (see TCBDowngrade). It never travels: not in tokens, records or policies.
	TCBDowngrade *TCBDowngrade `json:"-"`
}

// TCBDowngrade says that the platform's TCB status (Claims.TCBStatus and Advisories, under
// the TCB info in use now) is worse than under the previous set trustd held for the platform,
// whose TCB evaluation data number is lower: a TCB recovery. trustd appraises such claims under
// the previous status while the policy's tcbRecoveryGrace lasts from Since, and otherwise
// refuses with Refusal when set (the verifier's own refusal of the new status) or lets the
// policy judge the new status. A revoked PCK, status Revoked or a CRL never produce one.
type TCBDowngrade struct {
	Status     string
	Advisories []string
	// FromEval and ToEval are the TCB evaluation data numbers of the previous and the new set.
	FromEval, ToEval int
	// Since is when trustd first accepted the newer set for this platform.
	Since   time.Time
	Refusal error
}

// ErrStaleClaims: the claims lack what re-appraising them against the collateral in use now
// needs (a token from an older trustd, or collateral trustd no longer holds in memory); the
// workload must attest again.
var ErrStaleClaims = errors.New("claims cannot be re-appraised against current collateral")

// TCBUpdater is implemented by verifiers that recompute, at each release, the TCB status and
// advisories of claims they issued from the collateral they hold now for the platform (an
// Intel TCB recovery). It reads only memory. It sets TCBDowngrade as Verify does.
type TCBUpdater interface {
	UpdateTCB(c *Claims, now time.Time) error
}

// Tristate is a yes/no property that evidence may leave undetermined.
type Tristate string

// The values of a Tristate. The zero value "" reads as TriUnknown.
const (
	TriTrue    Tristate = "true"
	TriFalse   Tristate = "false"
	TriUnknown Tristate = "unknown"
)

// TristateOf maps a known boolean to TriTrue or TriFalse and nil to TriUnknown.
func TristateOf(b *bool) Tristate {
	switch {
	case b == nil:
		return TriUnknown
	case *b:
		return TriTrue
	}
	return TriFalse
}

// Known reports whether t is TriTrue or TriFalse, and which.
func (t Tristate) Known() (value, known bool) {
	switch t {
	case TriTrue:
		return true, true
	case TriFalse:
		return false, true
	}
	return false, false
}

// String returns "unknown" for the zero value.
func (t Tristate) String() string {
	if t != TriTrue && t != TriFalse {
		return string(TriUnknown)
	}
	return string(t)
}

// Hex is a byte string that reads and writes as lowercase hex in JSON and YAML.
type Hex []byte

func (h Hex) String() string { return hex.EncodeToString(h) }

// MarshalText implements encoding.TextMarshaler.
func (h Hex) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hex) UnmarshalText(b []byte) error {
	d, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("not hex: %w", err)
	}
	*h = d
	return nil
}

// Errors a Verifier wraps so that callers can map them without string matching. The service maps
// ErrMalformed to InvalidArgument, ErrNotAuthentic to PermissionDenied and ErrUnavailable to
// Unavailable.
var (
	// ErrMalformed: the evidence does not parse (truncated, oversized, wrong version).
	ErrMalformed = errors.New("malformed evidence")
	// ErrNotAuthentic: it parses but is not authentic (signature, chain, revocation, expiry,
	// TCB mismatch, report data binding).
	ErrNotAuthentic = errors.New("evidence not authentic")
	// ErrUnavailable: authenticity cannot be decided now (collateral service unreachable).
	ErrUnavailable = errors.New("collateral unavailable")
)

// Error is a verification failure that names the field or check.
type Error struct {
	Kind  error  // one of ErrMalformed, ErrNotAuthentic, ErrUnavailable
	Field string // e.g. "report.signature", "certificates.vcek"
	Err   error
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%v: %v", e.Kind, e.Err)
	}
	return fmt.Sprintf("%v: %s: %v", e.Kind, e.Field, e.Err)
}

func (e *Error) Unwrap() []error { return []error{e.Kind, e.Err} }

// Malformed returns an ErrMalformed error for field.
func Malformed(field string, format string, args ...any) error {
	return &Error{Kind: ErrMalformed, Field: field, Err: fmt.Errorf(format, args...)}
}

// NotAuthentic returns an ErrNotAuthentic error for field, wrapping err.
func NotAuthentic(field string, err error) error {
	return &Error{Kind: ErrNotAuthentic, Field: field, Err: err}
}

// Unavailable returns an ErrUnavailable error for field, wrapping err.
func Unavailable(field string, err error) error {
	return &Error{Kind: ErrUnavailable, Field: field, Err: err}
}
