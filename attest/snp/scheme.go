package snp

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/medicus-cloud/trust/attest"
)

// Claim names this package fills beyond the common claims.
const (
	ClaimHostData        = "host_data"         // Config, 32 bytes
	ClaimIDKeyDigest     = "id_key_digest"     // Config, 48 bytes
	ClaimAuthorKeyDigest = "author_key_digest" // Config, 48 bytes
	ClaimFamilyID        = "family_id"         // Config, 16 bytes
	ClaimImageID         = "image_id"          // Config, 16 bytes
	ClaimGuestSVN        = "guest_svn"         // TCB
	ClaimVMPL            = "vmpl"              // Attributes
	ClaimGuestPolicy     = "guest_policy"      // Attributes
	ClaimPlatformInfo    = "platform_info"     // Attributes
	ClaimCRLChecked      = "crl_checked"       // Attributes: 0 when verified without a CRL
	ClaimChipID          = "chip_id"           // Platform
	// TCB components of REPORTED_TCB; COMMITTED_TCB, LAUNCH_TCB and CURRENT_TCB carry the
	// prefixes "committed.", "launch." and "current.".
	ClaimTCBBootloader = "bootloader"
	ClaimTCBTEE        = "tee"
	ClaimTCBSNP        = "snp"
	ClaimTCBMicrocode  = "microcode"
	ClaimTCBFMC        = "fmc"
)

// Scheme is SEV-SNP for trustd, trustctl and policies (see attest/schemes).
var Scheme = attest.Scheme{
	TEE:         attest.SEVSNP,
	Aliases:     []string{"snp", "sevsnp"},
	Section:     "snp",
	NewConfig:   func() attest.SchemeConfig { return new(Config) },
	Measurement: attest.MeasurementRule{Register: "MEASUREMENT", Size: 48},
	Claims: attest.ClaimNames{
		Config: map[string]int{ClaimHostData: 32, ClaimIDKeyDigest: 48, ClaimAuthorKeyDigest: 48, ClaimFamilyID: 16, ClaimImageID: 16},
		TCB: []string{ClaimTCBBootloader, ClaimTCBTEE, ClaimTCBSNP, ClaimTCBMicrocode, ClaimTCBFMC, ClaimGuestSVN,
			"launch." + ClaimTCBBootloader, "launch." + ClaimTCBTEE, "launch." + ClaimTCBSNP, "launch." + ClaimTCBMicrocode, "launch." + ClaimTCBFMC,
			"committed." + ClaimTCBBootloader, "committed." + ClaimTCBTEE, "committed." + ClaimTCBSNP, "committed." + ClaimTCBMicrocode, "committed." + ClaimTCBFMC},
	},
	File: &attest.FileVerifier{
		Flags: []attest.FileFlag{
			{Name: "certs", Usage: "SEV-SNP: offline directory of VCEK/VLEK certificates and CRLs"},
			{Name: "crl-optional", Bool: true, Usage: "SEV-SNP: verify without a CRL when none is at hand (claims show crl_checked=0)"},
		},
		Verifier: fileVerifier,
	},
}

// Config is the `verifiers: snp:` section of trustd's configuration.
type Config struct {
	// Disabled is deprecated: remove the section instead.
	Disable bool `yaml:"disabled"`
	// Offline never touches the network: VCEKs come with the evidence or from CertsDir.
	Offline bool   `yaml:"offline"`
	KDSURL  string `yaml:"kds_url"`
	// CertsDir is an offline collateral directory (VCEK/VLEK certificates and CRLs).
	CertsDir string `yaml:"certs_dir"`
	// CacheDir keeps fetched certificates and CRLs; default DataDir/collateral/snp.
	CacheDir string `yaml:"cache_dir"`
	// CollateralRefresh fetches AMD's CRLs again this often whatever their nextUpdate (default
	// 1h); CollateralMaxAge is how long a failed refresh keeps the last good CRL before
	// verification fails closed (default 24h).
	CollateralRefresh time.Duration `yaml:"collateral_refresh"`
	CollateralMaxAge  time.Duration `yaml:"collateral_max_age"`
}

// Disabled implements attest.SchemeConfig.
func (c *Config) Disabled() bool { return c.Disable }

// NewVerifier implements attest.SchemeConfig.
func (c *Config) NewVerifier(d attest.Deps) (attest.Verifier, error) {
	o := Options{KDSURL: c.KDSURL, CertsDir: c.CertsDir, CacheDir: c.CacheDir, CacheObserver: d.Observer("amd-endorsement"),
		Freshness: Freshness{RefreshInterval: c.CollateralRefresh, MaxAge: c.CollateralMaxAge}, HighWater: d.HighWater}
	if c.Offline && o.CertsDir == "" && d.BundleDir != "" {
		o.CertsDir = filepath.Join(d.BundleDir, "snp") // an imported collateral bundle
	}
	if o.CacheDir == "" && d.DataDir != "" {
		o.CacheDir = filepath.Join(d.DataDir, "collateral", "snp")
	}
	if !c.Offline && c.CertsDir == "" {
		// Bounded, so that a throttled KDS cannot hold an Attest call for minutes; the cache
		// makes later verifications of the same chip and TCB local.
		o.Getter = &HTTPGetter{Attempts: 2, Backoff: 2 * time.Second, MaxBackoff: 10 * time.Second}
		// Replicas share what they fetch (offline, each reads its own collateral directory).
		o.Store = d.CollateralStore
	}
	v, err := New(o)
	if err != nil {
		return nil, fmt.Errorf("snp: %w", err)
	}
	return v, nil
}

func fileVerifier(file []byte, o attest.FileOptions) (*attest.Evidence, attest.Verifier, error) {
	ev, err := EvidenceFromFile(file)
	if err != nil {
		return nil, nil, err
	}
	vo := Options{CertsDir: o.Values["certs"]}
	if o.Values["crl-optional"] == "true" {
		vo.Revocation = RevocationIfAvailable
	}
	if o.Online && vo.CertsDir == "" {
		vo.Getter = &HTTPGetter{}
	}
	v, err := New(vo)
	if err != nil {
		return nil, nil, err
	}
	return ev, v, nil
}
