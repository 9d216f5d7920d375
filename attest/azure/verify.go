package azure

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure/azureabi"
	"github.com/medicus-cloud/trust/attest/snp"
	"github.com/medicus-cloud/trust/attest/tdx"
)

// Paravisor is the Platform["paravisor"] claim of Azure evidence: the launch measurement and the
// other TEE claims are the paravisor's (Azure's HCL), not the guest image's, which is in the PCRs.
const Paravisor = "azure-hcl"

// tdInfoMRTD is where MRTD sits in TDREPORT_STRUCT: REPORTMACSTRUCT (256), TEE_TCB_INFO (239)
// and reserved (17), then TDINFO: ATTRIBUTES (8), XFAM (8), MRTD (48).
const tdInfoMRTD = 512 + 16

// Verifier verifies Azure SEV-SNP or Azure TDX evidence. It is safe for concurrent use.
type Verifier struct {
	tee attest.TEE
	snp *snp.Verifier
	tdx *tdx.Verifier
}

// NewSNP returns a Verifier of Azure SEV-SNP evidence whose SNP reports v authenticates (chain,
// CRL, TCB: as v is configured).
func NewSNP(v *snp.Verifier) *Verifier { return &Verifier{tee: SNP, snp: v} }

// NewTDX returns a Verifier of Azure TDX evidence whose TD quotes v authenticates.
func NewTDX(v *tdx.Verifier) *Verifier { return &Verifier{tee: TDX, tdx: v} }

// TEE implements attest.Verifier.
func (v *Verifier) TEE() attest.TEE { return v.tee }

// Verify implements attest.Verifier. ev.Report is an evidence document (see Decode);
// ev.Certificates, if set, is an SNP certificate table; ev.Collateral goes to the SNP or TDX
// verifier as it would for bare-metal evidence.
//
// The claims' ReportData is the quote's qualifying data; the caller checks it with CheckBinding.
func (v *Verifier) Verify(ctx context.Context, ev *attest.Evidence, opts attest.Options) (*attest.Claims, error) {
	if ev == nil {
		return nil, attest.Malformed("evidence", "missing")
	}
	if ev.TEE != v.tee {
		return nil, attest.Malformed("tee", "%q, want %q", ev.TEE, v.tee)
	}
	e, err := Decode(ev.Report, v.tee)
	if err != nil {
		return nil, err
	}
	if len(ev.Certificates) > 0 && len(e.Certificates) == 0 {
		e.Certificates = ev.Certificates
	}
	return v.VerifyEvidence(ctx, e, ev.Collateral, opts)
}

// VerifyEvidence verifies decoded evidence; collateral is passed to the SNP or TDX verifier.
func (v *Verifier) VerifyEvidence(ctx context.Context, e *Evidence, collateral map[string][]byte, opts attest.Options) (*attest.Claims, error) {
	if e == nil || e.TEE != v.tee {
		return nil, attest.Malformed("tee", "want %s evidence", v.tee)
	}
	if err := e.Check(); err != nil {
		return nil, err
	}
	collateral, tpmLog, hasTPMLog := splitTPMEventLog(collateral) // eventlog.go
	hcl, err := ParseHCLReport(e.HCLReport)
	if err != nil {
		return nil, err
	}
	var c *attest.Claims
	switch v.tee {
	case SNP:
		if hcl.ReportType != azureabi.ReportTypeSNP {
			return nil, attest.Malformed("hcl_report.report_type", "%d: not an SEV-SNP report", hcl.ReportType)
		}
		if c, err = v.verifySNP(ctx, e, hcl, collateral, opts); err != nil {
			return nil, err
		}
	case TDX:
		if hcl.ReportType != azureabi.ReportTypeTDX {
			return nil, attest.Malformed("hcl_report.report_type", "%d: not a TDX report", hcl.ReportType)
		}
		if c, err = v.verifyTDX(ctx, e, hcl, collateral, opts); err != nil {
			return nil, err
		}
	default:
		return nil, attest.Malformed("tee", "%q", v.tee)
	}
	// REPORT_DATA, now known authentic, commits to the runtime data and so to the AK.
	digest := hcl.RuntimeDataDigest()
	if subtle.ConstantTimeCompare(c.ReportData[:len(digest)], digest) != 1 {
		return nil, attest.NotAuthentic("runtime_data", errors.New("its hash is not the hardware report's REPORT_DATA"))
	}
	rd, err := ParseRuntimeData(hcl.RuntimeData)
	if err != nil {
		return nil, err
	}
	ak, err := rd.AK()
	if err != nil {
		return nil, err
	}
	att, pcrs, err := verifyQuote(&e.Quote, ak)
	if err != nil {
		return nil, err
	}
	akDER, err := x509.MarshalPKIXPublicKey(ak)
	if err != nil {
		return nil, attest.Malformed("runtime_data.keys."+AKKeyID, "%v", err)
	}
	akDigest := sha256.Sum256(akDER)

	c.TEE = v.tee
	if c.Config == nil {
		c.Config = map[string]attest.Hex{}
	}
	c.Config[ClaimHCLReportData] = c.ReportData
	c.Config[ClaimAKDigest] = akDigest[:]
	if u, err := hex.DecodeString(rd.UserData); err == nil && len(u) > 0 {
		c.Config[ClaimHCLUserData] = u
	}
	c.Platform = maps.Clone(c.Platform)
	if c.Platform == nil {
		c.Platform = map[string]string{}
	}
	c.Platform["paravisor"] = Paravisor
	c.Platform["measurement_of"] = "paravisor"
	if c.Measurements == nil {
		c.Measurements = map[string]attest.Hex{}
	}
	for i, val := range pcrs {
		c.Measurements[attest.PCRClaim(i)] = bytes.Clone(val)
	}
	c.ReportData = bytes.Clone(att.ExtraData.Buffer)
	if hasTPMLog {
		if err := tpmEventLog(tpmLog, pcrs, c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (v *Verifier) verifySNP(ctx context.Context, e *Evidence, hcl *HCLReport, collateral map[string][]byte, opts attest.Options) (*attest.Claims, error) {
	coll := maps.Clone(collateral)
	if len(e.VCEK) > 0 {
		if coll == nil {
			coll = map[string][]byte{}
		}
		// The VCEK Azure's host serves is as untrusted as the report; the SNP verifier checks
		// it against AMD's chain like any other.
		coll["vcek.der"] = e.VCEK
		delete(coll, "vcek.pem")
	}
	c, err := v.snp.Verify(ctx, &attest.Evidence{TEE: attest.SEVSNP, Report: hcl.HWReport, Certificates: e.Certificates, Collateral: coll}, opts)
	if err != nil {
		return nil, within("hcl_report", err)
	}
	// The paravisor runs at VMPL0 and requested the report there; a report from a higher VMPL
	// was made by the guest behind the paravisor's back.
	if c.Attributes[snp.ClaimVMPL] != 0 {
		return nil, attest.NotAuthentic("hcl_report."+snp.ClaimVMPL, fmt.Errorf("%d, want 0 (the paravisor's)", c.Attributes[snp.ClaimVMPL]))
	}
	return c, nil
}

func (v *Verifier) verifyTDX(ctx context.Context, e *Evidence, hcl *HCLReport, collateral map[string][]byte, opts attest.Options) (*attest.Claims, error) {
	// The TD's RTMRs and CCEL are the paravisor's, not the guest's: components from them would
	// pass for the guest's boot. The guest's boot log is the vTPM's (tpm.eventlog).
	for _, name := range []string{tdx.CollateralCCELLog, tdx.CollateralCCELTable} {
		if _, ok := collateral[name]; ok {
			return nil, attest.Malformed("collateral."+name, "not accepted in Azure evidence: the TD's registers are the paravisor's; send the vTPM's event log as %s", CollateralTPMEventLog)
		}
	}
	c, err := v.tdx.Verify(ctx, &attest.Evidence{TEE: attest.TDX, Report: e.TDQuote, Collateral: collateral}, opts)
	if err != nil {
		return nil, within("td_quote", err)
	}
	// The TD report is MACed for the platform only; the quote made from it is what is
	// authentic. They must be the same report.
	if !bytes.Equal(hcl.TDReportData(), c.ReportData) {
		return nil, attest.NotAuthentic("hcl_report.td_report.report_data", errors.New("differs from the TD quote's REPORTDATA"))
	}
	if !bytes.Equal(hcl.HWReport[tdInfoMRTD:tdInfoMRTD+48], c.Measurement) {
		return nil, attest.NotAuthentic("hcl_report.td_report.mrtd", errors.New("differs from the TD quote's MRTD"))
	}
	return c, nil
}

// within prefixes the field of a verification error with the part of the evidence it is in.
func within(part string, err error) error {
	var ae *attest.Error
	if errors.As(err, &ae) {
		f := part
		if ae.Field != "" {
			f = part + "." + ae.Field
		}
		return &attest.Error{Kind: ae.Kind, Field: f, Err: ae.Err}
	}
	return err
}

// CheckBinding checks that the verified quote's qualifying data is QualifyingData(want): that the
// vTPM quoted for this request's nonce, HPKE suite and workload key.
func CheckBinding(c *attest.Claims, want [attest.ReportDataSize]byte) error {
	if c == nil || subtle.ConstantTimeCompare(c.ReportData, QualifyingData(want)) != 1 {
		return attest.NotAuthentic("tpm_quote.extra_data", errors.New("the quote's qualifying data is not this request's binding of nonce, suite and workload key"))
	}
	return nil
}

// CheckBinding implements attest.BindingChecker: the package-level CheckBinding, since the
// quote carries SHA-256 of the binding rather than the binding.
func (v *Verifier) CheckBinding(c *attest.Claims, want [attest.ReportDataSize]byte) error {
	return CheckBinding(c, want)
}
