package sgx

import (
	"fmt"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/intel"
)

// Claim names this package fills beyond the common claims.
const (
	ClaimMRSIGNER     = "mrsigner"        // Measurements, 32 bytes
	ClaimConfigID     = "config_id"       // Config, 64 bytes
	ClaimISVExtProdID = "isv_ext_prod_id" // Config, 16 bytes
	ClaimISVFamilyID  = "isv_family_id"   // Config, 16 bytes
	ClaimCPUSVN       = "cpu_svn"         // Config, 16 bytes
	ClaimISVSVN       = "isv_svn"         // TCB
	ClaimConfigSVN    = "config_svn"      // TCB
	ClaimISVProdID    = "isv_prod_id"     // Attributes
)

// Scheme is SGX for trustd, trustctl and policies (see attest/schemes).
var Scheme = attest.Scheme{
	TEE:         attest.SGX,
	Section:     "sgx",
	NewConfig:   func() attest.SchemeConfig { return new(Config) },
	Measurement: attest.MeasurementRule{Register: "MRENCLAVE", Size: 32},
	Claims: attest.ClaimNames{
		Measurements: map[string]int{ClaimMRSIGNER: 32},
		Config:       map[string]int{ClaimConfigID: 64, ClaimISVFamilyID: 16, ClaimISVExtProdID: 16},
		TCB:          []string{ClaimISVSVN},
	},
	File: &attest.FileVerifier{
		Flags:    []attest.FileFlag{intel.CollateralFlag},
		Verifier: fileVerifier,
	},
}

// Config is the `verifiers: sgx:` section of trustd's configuration.
type Config struct {
	intel.PCSConfig `yaml:",inline"`
}

// NewVerifier implements attest.SchemeConfig.
func (c *Config) NewVerifier(d attest.Deps) (attest.Verifier, error) {
	v, err := New(Options{CollateralDir: c.CollateralDir, PCSURL: c.URL(), CacheDir: c.Cache(d.DataDir, "sgx"), Freshness: c.FreshnessFor(d),
		CacheObserver: d.Observer("intel-pcs-sgx")})
	if err != nil {
		return nil, fmt.Errorf("sgx: %w", err)
	}
	if err := v.UseBundle(c.Offline, d.BundleDir); err != nil {
		return nil, err
	}
	return v, nil
}

func fileVerifier(file []byte, o attest.FileOptions) (*attest.Evidence, attest.Verifier, error) {
	ev, err := EvidenceFromFile(file) // a raw quote or an EGo remote report
	if err != nil {
		return nil, nil, err
	}
	v, err := New(Options{CollateralDir: o.Values[intel.CollateralFlag.Name], PCSURL: intel.FileURL(o)})
	if err != nil {
		return nil, nil, err
	}
	return ev, v, nil
}
