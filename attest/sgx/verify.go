// Package sgx verifies Intel SGX DCAP ECDSA-P256 quotes (versions 3, 4 and 5 with an enclave
// body), such as those of enclaves built with EGo, and maps them onto attest.Claims.
//
// Verification follows Intel's quote verification: the attestation key signs the header and the
// enclave report, the PCK signs the QE report, the QE report binds the attestation key, the PCK
// chain goes to Intel's SGX Root CA, and with collateral (SGX TCB info, QE identity, CRLs) the
// PCK is checked for revocation, the QE against Intel's identity, and the platform and QE TCB
// statuses are evaluated and combined. Without collateral the quote is still authenticated and
// TCBStatus is "unknown".
//
// It is not a policy engine: apart from refusing revoked and (by default) out-of-date TCBs, which
// MRENCLAVE, MRSIGNER, product or SVN is acceptable is for package policies. A debug enclave's
// quote is authentic: it verifies, with Claims.Debug set (trustd refuses debug guests outside
// --dev).
package sgx

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/intel"
)

// Options configure a Verifier. The zero value trusts Intel's SGX Root CA (embedded), uses no
// network, denies revoked or out-of-date TCBs, and reports TCB status
// "unknown" when no collateral is at hand.
type Options struct {
	// Root replaces the Intel SGX Root CA; for tests with a private PCK hierarchy.
	Root *x509.Certificate
	// CollateralDir is an offline SGX collateral directory (see intel.Files: the SGX TCB info
	// of the platform's FMSPC, the SGX QE identity, the PCK and root CA CRLs), read by New and
	// by ReloadCollateral.
	CollateralDir string
	// PCSURL enables online SGX collateral from Intel PCS (intel.DefaultPCSURL) or a PCCS for
	// platforms that neither the evidence nor CollateralDir covers. Empty means no network.
	PCSURL string
	// RootCRLURL overrides where the root CA CRL is fetched from (see intel.FetchOptions).
	RootCRLURL string
	// Getter performs PCS requests; nil means intel.HTTPGetter{}.
	Getter intel.Getter
	// CacheDir keeps fetched collateral on disk until its nextUpdate; empty keeps it in memory.
	CacheDir string
	// AllowOutOfDate accepts OutOfDate and OutOfDateConfigurationNeeded TCB statuses.
	AllowOutOfDate bool
	// RequireCollateral denies quotes whose TCB cannot be appraised for want of collateral,
	// instead of reporting TCB status "unknown".
	RequireCollateral bool
	// CacheObserver, if set, learns whether each online collateral lookup was answered from
	// the cache (for metrics). It must not block.
	CacheObserver func(hit bool)
	// Freshness of online collateral: refresh interval, maximum age, minimum TCB evaluation
	// data number (see intel.Freshness); the zero value takes the defaults.
	Freshness intel.Freshness
}

// Verifier verifies SGX quotes. It is safe for concurrent use.
type Verifier struct {
	o Options
	q *intel.QuoteVerifier
	intel.Lifecycle
}

// maxOnline bounds the online collateral cache (by FMSPC and PCK CA); past it the cache is
// dropped and rebuilt, which costs only fetching again (from CacheDir when set).
const maxOnline = 4096

// New returns a Verifier. With CollateralDir set, the directory must hold complete SGX
// collateral.
func New(o Options) (*Verifier, error) {
	q := intel.NewQuoteVerifier(intel.QuoteVerifierOptions{
		Root: o.Root, PCSURL: o.PCSURL, RootCRLURL: o.RootCRLURL, Getter: o.Getter, CacheDir: o.CacheDir,
		SGX: true, MaxOnline: maxOnline, CacheObserver: o.CacheObserver, Freshness: o.Freshness,
	})
	v := &Verifier{o: o, q: q, Lifecycle: intel.NewLifecycle(q, attest.SGX, "SGX")}
	if o.CollateralDir != "" {
		if err := v.ReloadCollateral(); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// ReloadCollateral re-reads Options.CollateralDir, for example after `trustctl collateral fetch
// --tee sgx` refreshed it.
func (v *Verifier) ReloadCollateral() error {
	return v.q.LoadDir(v.o.CollateralDir, "sgx", "SGX")
}

// TEE implements attest.Verifier.
func (v *Verifier) TEE() attest.TEE { return attest.SGX }

// Verify implements attest.Verifier. ev.Report is the raw DCAP quote (enclave/ego strips EGo's
// report header). ev.Collateral, when present, must be a complete collateral set by file name
// (intel.Files); it is used only for platforms that neither the directory nor PCS covers.
func (v *Verifier) Verify(ctx context.Context, ev *attest.Evidence, opts attest.Options) (*attest.Claims, error) {
	if ev == nil || ev.TEE != attest.SGX {
		return nil, attest.Malformed("evidence.tee", "not SGX evidence")
	}
	now := opts.Time()
	q, err := ParseQuote(ev.Report)
	if err != nil {
		return nil, err
	}
	pck, info, err := v.authenticate(q, now)
	if err != nil {
		return nil, err
	}
	qe, err := intel.ParseEnclaveReport(q.QEReport)
	if err != nil {
		return nil, attest.Malformed("quote.qe_report", "%v", err)
	}
	if err := checkQE(qe); err != nil {
		return nil, err
	}
	// A debug enclave is reported (Claims.Debug), not refused: authenticity is not the question.
	c := claims(q, info, qe)
	if err := v.appraise(ctx, ev, c, pck, info, now); err != nil {
		return nil, err
	}
	c.Platform[intel.ClaimPCKSerial] = pck.Leaf.SerialNumber.Text(16) // for release-time rechecks (collateral.go)
	return c, nil
}

// authenticate checks the signatures and the binding that make the quote Intel's.
func (v *Verifier) authenticate(q *Quote, now time.Time) (*intel.Chain, *intel.PCKInfo, error) {
	return v.q.Authenticate(&intel.QuoteSignature{
		Signed: q.Signed, Signature: q.Signature, AttestationKey: q.AttestationKey,
		QEReport: q.QEReport, QEReportSignature: q.QEReportSignature, QEAuthData: q.QEAuthData,
		PCKChain: q.PCKChain,
	}, "enclave report", now)
}

// IntelQEMRSIGNER is the MRSIGNER of Intel's quoting enclaves (the SGX QE's identity at PCS
// names it, and Intel's QVL pins it for the QvE).
var IntelQEMRSIGNER = [32]byte{
	0x8c, 0x4f, 0x57, 0x75, 0xd7, 0x96, 0x50, 0x3e, 0x96, 0x13, 0x7f, 0x77, 0xc6, 0x8a, 0x82, 0x9a,
	0x00, 0x56, 0xac, 0x8d, 0xed, 0x70, 0x14, 0x0b, 0x08, 0x1b, 0x09, 0x44, 0x90, 0xc5, 0x7b, 0xff,
}

// checkQE pins the quoting enclave to Intel's SGX QE even without collateral (the QE identity
// then checks the same and more): the PCK certifies reports of any enclave allowed the
// provisioning key, and only Intel's QE is trusted to vouch for attestation keys.
func checkQE(qe *intel.EnclaveReport) error {
	switch {
	case qe.MRSIGNER != IntelQEMRSIGNER:
		return attest.NotAuthentic("quote.qe_report.mrsigner", fmt.Errorf("quoting enclave signer %x is not Intel's", qe.MRSIGNER))
	case qe.ISVProdID != 1:
		return attest.NotAuthentic("quote.qe_report.isv_prod_id", fmt.Errorf("quoting enclave product %d is not the SGX QE (1)", qe.ISVProdID))
	case qe.Attributes[0]&AttributeDebug != 0:
		return attest.NotAuthentic("quote.qe_report.attributes.debug", errors.New("the quoting enclave is a debug enclave"))
	}
	return nil
}

// appraise evaluates the TCB status as Intel's quote verification does for SGX: the platform's
// level from the PCK certificate's TCB (CPUSVN components and PCESVN) in the SGX TCB info,
// folded with the QE's level from the QE identity. It reads them from the claims (as a release
// does, collateral.go) and sets the status in c.
func (v *Verifier) appraise(ctx context.Context, ev *attest.Evidence, c *attest.Claims, pck *intel.Chain, info *intel.PCKInfo, now time.Time) error {
	vc, err := v.q.Collateral(ctx, ev.Collateral, info.Ext.FMSPCHex(), info.CA, now)
	if err != nil {
		return err
	}
	if vc == nil {
		status, err := intel.NoCollateral(v.o.RequireCollateral)
		c.TCBStatus = string(status)
		return err
	}
	if err := vc.CheckPCK(pck); err != nil {
		return intel.RevocationError(err)
	}
	prev, since := v.q.Previous(info.Ext.FMSPCHex(), info.CA, vc)
	return v.appraiseClaims(c, vc, prev, since)
}

// appraiseClaims sets the TCB status, advisories and any downgrade of c under vc (and prev,
// see intel.AppraiseRecovery).
func (v *Verifier) appraiseClaims(c *attest.Claims, vc, prev *intel.Verified, since time.Time) error {
	ext, qe, err := intel.RecomputeInput(c, IntelQEMRSIGNER, 1)
	if err != nil {
		return err
	}
	eval := func(vc *intel.Verified) (intel.Status, []string, error) { return evaluate(vc, ext, qe) }
	st, adv, dg, err := intel.AppraiseRecovery(vc, prev, since, eval, v.refuse)
	if err != nil {
		return err
	}
	c.TCBStatus, c.Advisories, c.TCBDowngrade = string(st), adv, dg
	return nil
}

// refuse is the verifier's own rule: Revoked never, out of date only when allowed.
func (v *Verifier) refuse(status intel.Status, adv []string) error {
	switch {
	case status == intel.Revoked:
		return attest.NotAuthentic("tcb_status", fmt.Errorf("TCB status is Revoked%s", intel.AdvisoryText(adv)))
	case status.OutOfDate() && !v.o.AllowOutOfDate:
		return attest.NotAuthentic("tcb_status", fmt.Errorf("TCB status is %s%s", status, intel.AdvisoryText(adv)))
	}
	return nil
}

// evaluate computes the enclave platform's TCB status and advisories under vc.
func evaluate(vc *intel.Verified, ext *intel.PCKExtensions, qe *intel.EnclaveReport) (intel.Status, []string, error) {
	ti := vc.TCBInfo
	if ti.ID != "SGX" {
		return "", nil, attest.NotAuthentic("collateral."+intel.FileTCBInfo, fmt.Errorf("TCB info is for %s, not SGX", ti.ID))
	}
	if err := intel.MatchPlatform(ti, ext); err != nil {
		return "", nil, err
	}
	qi := vc.QEIdentity
	if qi.ID != "QE" {
		return "", nil, attest.NotAuthentic("collateral."+intel.FileQEIdentity, fmt.Errorf("QE identity is for %q, not the SGX QE", qi.ID))
	}
	qeLevel, err := qi.Match(qe)
	if err != nil {
		return "", nil, attest.NotAuthentic("quote.qe_report", err)
	}
	platLevel, err := ti.PlatformLevel(ext, nil)
	if err != nil {
		return "", nil, attest.NotAuthentic("tcb_status", err)
	}
	return intel.Converge(platLevel.TCBStatus, qeLevel.TCBStatus), intel.Advisories(platLevel, qeLevel), nil
}

// claims maps a verified quote onto the normalized claims. The names policies use:
// measurement (MRENCLAVE), measurements.mrsigner, attributes.isv_prod_id, tcb.isv_svn, debug
// and tcb_status.
func claims(q *Quote, info *intel.PCKInfo, qe *intel.EnclaveReport) *attest.Claims {
	b := &q.Body
	hx := func(p []byte) attest.Hex { return bytes.Clone(p) }
	c := &attest.Claims{
		TEE:         attest.SGX,
		Measurement: hx(b.MRENCLAVE[:]),
		Measurements: map[string]attest.Hex{
			ClaimMRSIGNER: hx(b.MRSIGNER[:]),
		},
		Config: map[string]attest.Hex{
			ClaimConfigID:     hx(b.ConfigID[:]),
			ClaimISVExtProdID: hx(b.ISVExtProdID[:]),
			ClaimISVFamilyID:  hx(b.ISVFamilyID[:]),
			ClaimCPUSVN:       hx(b.CPUSVN[:]),
			// The PCK's SVNs, for recomputing the TCB status at release (collateral.go).
			intel.ClaimPCKTCBComponents: hx(info.Ext.TCBComponents[:]),
		},
		TCB: map[string]uint64{
			ClaimISVSVN:    uint64(b.ISVSVN),
			ClaimConfigSVN: uint64(b.ConfigSVN),
			"pce_svn":      uint64(info.Ext.PCESVN),
			"qe_svn":       uint64(qe.ISVSVN),
		},
		Debug:              b.Debug(),
		PlatformSMTEnabled: attest.TristateOf(info.Ext.SMTEnabled), // unknown without the PCK configuration extension
		ReportData:         hx(b.ReportData[:]),
		Platform: map[string]string{
			"fmspc":         info.Ext.FMSPCHex(),
			"signer":        "pck",
			"pce_id":        info.Ext.PCEIDHex(),
			"ppid":          hex.EncodeToString(info.Ext.PPID),
			"pck_ca":        info.CA,
			"quote_version": strconv.Itoa(int(q.Version)),
		},
		Attributes: map[string]uint64{
			ClaimISVProdID:     uint64(b.ISVProdID),
			"attributes_flags": b.Flags,
			"xfrm":             b.XFRM,
			"misc_select":      uint64(b.MiscSelect),
		},
	}
	intel.SetQEClaims(c, qe)
	return c
}
