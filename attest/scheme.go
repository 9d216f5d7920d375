package attest

import (
	"fmt"
	"log/slog"
)

// A Scheme is one kind of TEE evidence, described by the package that verifies it (attest/snp,
// attest/tdx, attest/sgx, attest/sim). trustd builds its verifiers from schemes, trustctl its
// offline `evidence verify`, package policies its measurement and claim-name checks, and
// internal/wire its proto mapping; attest/schemes lists them. Adding a TEE is one package that
// exports a Scheme, one line in attest/schemes and one value of the proto TEE enum (see the
// attest/schemes documentation for the whole list).
type Scheme struct {
	// TEE is the canonical name, as in Evidence, Claims, policies, metrics and audit records.
	// Its proto enum value is named "TEE_" + TEE in upper case with "-" as "_" (internal/wire).
	TEE TEE
	// Aliases are further spellings that ParseTEE accepts (lower case).
	Aliases []string
	// Hardware, for a scheme whose TEE claims another scheme's verifier makes (Azure's
	// azure-snp: a paravisor's SEV-SNP report), is that scheme's TEE, so that policies apply
	// its defaults (SNP VMPL, TDX attributes) and tools read its claims alike. Empty means TEE.
	Hardware TEE
	// Section is the key of the scheme's configuration under trustd's `verifiers:`. A scheme
	// is on only when its section is present (DevOnly schemes: only in dev mode).
	Section string
	// DevOnly schemes accept evidence anyone can forge: trustd turns them on with --dev only,
	// whatever the configuration says, and never otherwise.
	DevOnly bool
	// NewConfig returns an empty configuration for the section to be decoded into (strictly:
	// unknown keys are errors). Its fields are the YAML keys.
	NewConfig func() SchemeConfig
	// Measurement says what Claims.Measurement is for this TEE.
	Measurement MeasurementRule
	// Claims lists the claim names the verifier fills beyond the common ones, so that policies
	// can refuse a typo instead of a requirement that never matches.
	Claims ClaimNames
	// File verifies evidence files offline (trustctl evidence verify); nil means it cannot.
	File *FileVerifier
}

// SchemeConfig is one scheme's decoded configuration section.
type SchemeConfig interface {
	// Disabled reports the deprecated `disabled: true` of a present section: the scheme stays
	// off and trustd logs a deprecation warning (remove the section instead).
	Disabled() bool
	// NewVerifier builds the verifier. Defaults (such as a cache directory under DataDir) are
	// applied here.
	NewVerifier(d Deps) (Verifier, error)
}

// Deps are what a verifier may take from the process that runs it.
type Deps struct {
	Logger *slog.Logger
	// CollateralCache learns whether a collateral lookup of source (a metrics label, such as
	// "intel-pcs-tdx") came from the cache. Nil means nobody listens.
	CollateralCache func(source string, hit bool)
	// DataDir is trustd's data directory, for default cache locations.
	DataDir string
	// Dev is trustd's --dev.
	Dev bool
	// HighWater, if set, is the collateral high-water mark shared by replicas (issue 16).
	HighWater HighWater
	// CollateralStore, if set, replaces the verifiers' disk caches of fetched collateral with
	// one that replicas share (attest/collstore, PostgreSQL).
	CollateralStore CollateralStore
	// BundleDir, if set, is where trustd extracted the imported collateral bundle
	// (intel/{tdx|sgx}/{fmspc}/, snp/); schemes configured offline use it.
	BundleDir string
}

// BundleLoader is a verifier that holds an imported collateral bundle in memory: trustd calls
// LoadBundle with the bundle directory again after an import without restart. A failed load
// leaves the set loaded before serving.
type BundleLoader interface {
	LoadBundle(dir string) error
}

// Observer returns a CacheObserver-style callback for source, or nil when nobody listens.
func (d Deps) Observer(source string) func(hit bool) {
	if d.CollateralCache == nil {
		return nil
	}
	return func(hit bool) { d.CollateralCache(source, hit) }
}

// MeasurementRule describes a TEE's launch measurement.
type MeasurementRule struct {
	// Register names the register that Claims.Measurement holds (MEASUREMENT, MRTD, MRENCLAVE).
	Register string
	// Size is its length in bytes.
	Size int
}

// Check reports whether m has the size of this rule, with an error naming the register.
func (r MeasurementRule) Check(tee TEE, m []byte) error {
	if len(m) != r.Size {
		return fmt.Errorf("%d bytes, want %d (%s %s)", len(m), r.Size, tee, r.Register)
	}
	return nil
}

// ClaimNames lists claim keys with their sizes in bytes (Measurements, Config) or just their
// names (TCB).
type ClaimNames struct {
	Measurements map[string]int
	Config       map[string]int
	TCB          []string
}

// FileVerifier is a scheme's part of `trustctl evidence verify --tee X FILE`.
type FileVerifier struct {
	// Flags are the command-line options the scheme reads (several schemes may share one).
	Flags []FileFlag
	// Verifier reads a file as tools save it and returns its evidence and an offline verifier
	// (online only if FileOptions.Online).
	Verifier func(file []byte, o FileOptions) (*Evidence, Verifier, error)
}

// FileFlag is one command-line option of a FileVerifier.
type FileFlag struct {
	Name  string
	Usage string
	Bool  bool
}

// FileOptions are the values given to trustctl evidence verify.
type FileOptions struct {
	// Online allows fetching certificates and collateral from the vendor.
	Online bool
	// Values holds the scheme's flags that were set, by name ("true" for a boolean flag).
	Values map[string]string
}
