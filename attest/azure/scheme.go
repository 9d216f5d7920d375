package azure

import (
	"errors"
	"fmt"
	"maps"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/snp"
	"github.com/medicus-cloud/trust/attest/tdx"
)

// Claim names this package fills beyond the SNP or TDX verifier's (and the PCRs, named by
// attest.PCRClaim).
const (
	ClaimAKDigest      = "vtpm_ak_sha256"  // Config, 32 bytes: SHA-256 of the AK's PKIX DER
	ClaimHCLReportData = "hcl_report_data" // Config, 64 bytes: the hardware REPORT_DATA
	ClaimHCLUserData   = "hcl_user_data"   // Config, 64 bytes: the runtime data's user-data
)

// SNPScheme is Azure SEV-SNP (through the paravisor and vTPM) for trustd, trustctl and policies
// (see attest/schemes). Its configuration section `azure-snp` takes the options of `snp`.
var SNPScheme = attest.Scheme{
	TEE:         SNP,
	Aliases:     []string{"azure-sev-snp", "azsnp"},
	Hardware:    attest.SEVSNP,
	Section:     "azure-snp",
	NewConfig:   func() attest.SchemeConfig { return new(SNPConfig) },
	Measurement: snp.Scheme.Measurement,
	Claims:      claimNames(snp.Scheme.Claims),
	File: &attest.FileVerifier{
		Flags:    snp.Scheme.File.Flags,
		Verifier: snpFileVerifier,
	},
}

// TDXScheme is Azure TDX (through the paravisor and vTPM). Its configuration section
// `azure-tdx` takes the options of `tdx`.
var TDXScheme = attest.Scheme{
	TEE:         TDX,
	Aliases:     []string{"aztdx"},
	Hardware:    attest.TDX,
	Section:     "azure-tdx",
	NewConfig:   func() attest.SchemeConfig { return new(TDXConfig) },
	Measurement: tdx.Scheme.Measurement,
	Claims:      claimNames(tdx.Scheme.Claims),
	File: &attest.FileVerifier{
		Flags:    []attest.FileFlag{intel.CollateralFlag},
		Verifier: tdxFileVerifier,
	},
}

// claimNames adds this package's claims to the inner scheme's.
func claimNames(inner attest.ClaimNames) attest.ClaimNames {
	c := attest.ClaimNames{
		Measurements: maps.Clone(inner.Measurements),
		Config:       maps.Clone(inner.Config),
		TCB:          inner.TCB,
	}
	if c.Measurements == nil {
		c.Measurements = map[string]int{}
	}
	if c.Config == nil {
		c.Config = map[string]int{}
	}
	for i := uint32(0); i <= MaxPCR; i++ {
		c.Measurements[attest.PCRClaim(i)] = 32
	}
	c.Config[ClaimAKDigest], c.Config[ClaimHCLReportData], c.Config[ClaimHCLUserData] = 32, 64, 64
	return c
}

// SNPConfig is the `verifiers: azure-snp:` section: the `snp` section's options, for the SEV-SNP
// verifier that authenticates the paravisor's reports.
type SNPConfig struct {
	snp.Config `yaml:",inline"`
}

// NewVerifier implements attest.SchemeConfig.
func (c *SNPConfig) NewVerifier(d attest.Deps) (attest.Verifier, error) {
	v, err := c.Config.NewVerifier(d)
	if err != nil {
		return nil, fmt.Errorf("azure-snp: %w", err)
	}
	sv, ok := v.(*snp.Verifier)
	if !ok {
		return nil, errors.New("azure-snp: the snp configuration built no SEV-SNP verifier")
	}
	return NewSNP(sv), nil
}

// TDXConfig is the `verifiers: azure-tdx:` section: the `tdx` section's options, for the TDX
// verifier that authenticates the TD quotes of the paravisor's reports.
type TDXConfig struct {
	tdx.Config `yaml:",inline"`
}

// NewVerifier implements attest.SchemeConfig.
func (c *TDXConfig) NewVerifier(d attest.Deps) (attest.Verifier, error) {
	v, err := c.Config.NewVerifier(d)
	if err != nil {
		return nil, fmt.Errorf("azure-tdx: %w", err)
	}
	tv, ok := v.(*tdx.Verifier)
	if !ok {
		return nil, errors.New("azure-tdx: the tdx configuration built no TDX verifier")
	}
	return NewTDX(tv), nil
}

// snpFileVerifier reads any encoding Decode reads; the SEV-SNP options are `snp`'s.
func snpFileVerifier(file []byte, o attest.FileOptions) (*attest.Evidence, attest.Verifier, error) {
	if _, err := Decode(file, SNP); err != nil {
		return nil, nil, err
	}
	vo := snp.Options{CertsDir: o.Values["certs"]}
	if o.Values["crl-optional"] == "true" {
		vo.Revocation = snp.RevocationIfAvailable
	}
	if o.Online && vo.CertsDir == "" {
		vo.Getter = &snp.HTTPGetter{}
	}
	sv, err := snp.New(vo)
	if err != nil {
		return nil, nil, err
	}
	return &attest.Evidence{TEE: SNP, Report: file}, NewSNP(sv), nil
}

func tdxFileVerifier(file []byte, o attest.FileOptions) (*attest.Evidence, attest.Verifier, error) {
	if _, err := Decode(file, TDX); err != nil {
		return nil, nil, err
	}
	tv, err := tdx.New(tdx.Options{CollateralDir: o.Values[intel.CollateralFlag.Name], PCSURL: intel.FileURL(o)})
	if err != nil {
		return nil, nil, err
	}
	return &attest.Evidence{TEE: TDX, Report: file}, NewTDX(tv), nil
}
