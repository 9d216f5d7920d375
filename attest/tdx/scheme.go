package tdx

import (
	"fmt"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/intel"
)

// Claim names this package fills beyond the common claims.
const (
	ClaimRTMR0        = "rtmr0"         // Measurements, 48 bytes
	ClaimRTMR1        = "rtmr1"         // Measurements, 48 bytes
	ClaimRTMR2        = "rtmr2"         // Measurements, 48 bytes
	ClaimRTMR3        = "rtmr3"         // Measurements, 48 bytes
	ClaimMRSEAM       = "mrseam"        // Measurements, 48 bytes
	ClaimMRSIGNERSEAM = "mrsignerseam"  // Measurements, 48 bytes
	ClaimMRSERVICETD  = "mrservicetd"   // Measurements, 48 bytes, TD 1.5 only
	ClaimMRCONFIGID   = "mrconfigid"    // Config, 48 bytes
	ClaimMROWNER      = "mrowner"       // Config, 48 bytes
	ClaimMROWNERCONF  = "mrownerconfig" // Config, 48 bytes
	ClaimTEETCBSVN    = "tee_tcb_svn"   // Config, 16 bytes
	ClaimTEETCBSVN2   = "tee_tcb_svn_2" // Config, 16 bytes, TD 1.5 only
	// ClaimSGXTCBComponents are the PCK's 16 SGX TCB component SVNs (Config, 16 bytes): with
	// pce_svn and tee_tcb_svn they let `trustctl collateral diff` appraise a recorded platform
	// against new collateral.
	ClaimSGXTCBComponents = intel.ClaimPCKTCBComponents
	ClaimTDAttributes     = "td_attributes" // Attributes
	ClaimXFAM             = "xfam"          // Attributes
)

// Scheme is TDX for trustd, trustctl and policies (see attest/schemes).
var Scheme = attest.Scheme{
	TEE:         attest.TDX,
	Section:     "tdx",
	NewConfig:   func() attest.SchemeConfig { return new(Config) },
	Measurement: attest.MeasurementRule{Register: "MRTD", Size: 48},
	Claims: attest.ClaimNames{
		Measurements: map[string]int{ClaimRTMR0: 48, ClaimRTMR1: 48, ClaimRTMR2: 48, ClaimRTMR3: 48,
			ClaimMRSEAM: 48, ClaimMRSIGNERSEAM: 48, ClaimMRSERVICETD: 48},
		Config: map[string]int{ClaimMRCONFIGID: 48, ClaimMROWNER: 48, ClaimMROWNERCONF: 48},
	},
	File: &attest.FileVerifier{
		Flags:    []attest.FileFlag{intel.CollateralFlag},
		Verifier: fileVerifier,
	},
}

// Config is the `verifiers: tdx:` section of trustd's configuration.
type Config struct {
	intel.PCSConfig `yaml:",inline"`
}

// NewVerifier implements attest.SchemeConfig.
func (c *Config) NewVerifier(d attest.Deps) (attest.Verifier, error) {
	v, err := New(Options{CollateralDir: c.CollateralDir, PCSURL: c.URL(), CacheDir: c.Cache(d.DataDir, "tdx"), Freshness: c.FreshnessFor(d),
		CacheObserver: d.Observer("intel-pcs-tdx")})
	if err != nil {
		return nil, fmt.Errorf("tdx: %w", err)
	}
	if err := v.UseBundle(c.Offline, d.BundleDir); err != nil {
		return nil, err
	}
	return v, nil
}

func fileVerifier(file []byte, o attest.FileOptions) (*attest.Evidence, attest.Verifier, error) {
	ev, err := EvidenceFromFile(file) // raw, hex or base64 quote
	if err != nil {
		return nil, nil, err
	}
	v, err := New(Options{CollateralDir: o.Values[intel.CollateralFlag.Name], PCSURL: intel.FileURL(o)})
	if err != nil {
		return nil, nil, err
	}
	return ev, v, nil
}
