// Package tdx verifies Intel TDX quotes (DCAP quote versions 4 and 5) and maps them onto
// attest.Claims.
//
// Verification follows Intel's: the attestation key signs the header and TD report, the PCK
// signs the QE report, the QE report binds the attestation key, the PCK chain goes to Intel's
// SGX Root CA, and with collateral (TCB info, QE identity, CRLs) the PCK is checked for
// revocation and the platform, TDX module and QE TCB statuses are evaluated and combined.
// Without collateral the evidence is still authenticated and TCBStatus is "unknown".
//
// It is not a policy engine: apart from refusing revoked and (by default) out-of-date TCBs, what
// is acceptable is for package policies. A debug TD's quote is authentic: it verifies, with
// Claims.Debug set (trustd refuses debug guests outside --dev).
package tdx

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/intel"
)

// Options configure a Verifier. The zero value trusts Intel's SGX Root CA (embedded), uses no
// network, denies revoked or out-of-date TCBs, and reports TCB status "unknown"
// when no collateral is at hand.
type Options struct {
	// Root replaces the Intel SGX Root CA; for tests with a private PCK hierarchy.
	Root *x509.Certificate
	// CollateralDir is an offline collateral directory (see intel.Files), read once by New
	// and by ReloadCollateral.
	CollateralDir string
	// PCSURL enables online collateral from Intel PCS (intel.DefaultPCSURL) or a PCCS, for
	// platforms that neither the evidence nor CollateralDir covers. Empty means no network.
	PCSURL string
	// RootCRLURL overrides where the root CA CRL is fetched from (see intel.FetchOptions).
	RootCRLURL string
	// Getter performs PCS requests; nil means intel.HTTPGetter{}.
	Getter intel.Getter
	// CacheDir keeps fetched collateral on disk until its nextUpdate; empty keeps it in memory.
	CacheDir string
	// AllowOutOfDate accepts OutOfDate and OutOfDateConfigurationNeeded TCB statuses, and the
	// TDRelaunchAdvised ones of TD 1.5 (launched on an out-of-date TDX module since updated).
	AllowOutOfDate bool
	// RequireCollateral denies evidence whose TCB cannot be appraised for want of collateral,
	// instead of reporting TCB status "unknown".
	RequireCollateral bool
	// CacheObserver, if set, learns whether each online collateral lookup was answered from
	// the cache (for metrics). It must not block.
	CacheObserver func(hit bool)
	// Freshness of online collateral: refresh interval, maximum age, minimum TCB evaluation
	// data number (see intel.Freshness); the zero value takes the defaults.
	Freshness intel.Freshness
}

// Verifier verifies TDX quotes. It is safe for concurrent use.
type Verifier struct {
	o Options
	q *intel.QuoteVerifier
	intel.Lifecycle
}

// maxOnline bounds the online collateral cache (by FMSPC and PCK CA); past it the cache is
// dropped and rebuilt.
const maxOnline = 1024

// New returns a Verifier. With CollateralDir set, the directory must hold complete collateral.
func New(o Options) (*Verifier, error) {
	q := intel.NewQuoteVerifier(intel.QuoteVerifierOptions{
		Root: o.Root, PCSURL: o.PCSURL, RootCRLURL: o.RootCRLURL, Getter: o.Getter, CacheDir: o.CacheDir,
		MaxOnline: maxOnline, CacheObserver: o.CacheObserver, Freshness: o.Freshness,
	})
	v := &Verifier{o: o, q: q, Lifecycle: intel.NewLifecycle(q, attest.TDX, "")}
	if o.CollateralDir != "" {
		if err := v.ReloadCollateral(); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// ReloadCollateral re-reads Options.CollateralDir, for example after `trustctl collateral fetch`
// refreshed it. The TCB info's ID is not checked here; appraise requires TDX.
func (v *Verifier) ReloadCollateral() error {
	return v.q.LoadDir(v.o.CollateralDir, "tdx", "")
}

// TEE implements attest.Verifier.
func (v *Verifier) TEE() attest.TEE { return attest.TDX }

// Verify implements attest.Verifier. ev.Collateral, when present, must be a complete collateral
// set by file name (intel.Files); it takes precedence over the directory and PCS.
func (v *Verifier) Verify(ctx context.Context, ev *attest.Evidence, opts attest.Options) (*attest.Claims, error) {
	if ev == nil || ev.TEE != attest.TDX {
		return nil, attest.Malformed("evidence.tee", "not TDX evidence")
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
	// A debug TD is reported (Claims.Debug), not refused: authenticity is not the question.
	c := claims(q, info, qe)
	if err := eventLog(ev, c); err != nil { // eventlog.go
		return nil, err
	}
	if err := v.appraise(ctx, withoutEventLog(ev), c, pck, info, now); err != nil {
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
	}, "TD report", now)
}

// IntelTDQEMRSigner is the MRSIGNER of Intel's TD quoting enclave, as Intel's TD_QE identity
// publishes it.
var IntelTDQEMRSigner = [32]byte{
	0xdc, 0x9e, 0x2a, 0x7c, 0x6f, 0x94, 0x8f, 0x17, 0x47, 0x4e, 0x34, 0xa7, 0xfc, 0x43, 0xed, 0x03,
	0x0f, 0x7c, 0x15, 0x63, 0xf1, 0xba, 0xbd, 0xdf, 0x63, 0x40, 0xc8, 0x2e, 0x0e, 0x54, 0xa8, 0xc5,
}

// TDQEProdID is the ISVPRODID of Intel's TD quoting enclave.
const TDQEProdID = 2

// checkQE pins the quoting enclave to Intel's TD QE even without collateral: the PCK signs the
// report of any enclave on the platform that asks, so only the QE's identity makes its word
// on the attestation key worth anything. With collateral the QE identity is checked in full.
func checkQE(qe *intel.EnclaveReport) error {
	switch {
	case qe.MRSIGNER != IntelTDQEMRSigner:
		return attest.NotAuthentic("quote.qe_report.mrsigner", fmt.Errorf("quoting enclave signer %x is not Intel's", qe.MRSIGNER))
	case qe.ISVProdID != TDQEProdID:
		return attest.NotAuthentic("quote.qe_report.isv_prod_id", fmt.Errorf("quoting enclave product %d is not the TD QE (%d)", qe.ISVProdID, TDQEProdID))
	case qe.Attributes[0]&0x02 != 0:
		return attest.NotAuthentic("quote.qe_report.attributes", errors.New("quoting enclave is a debug enclave"))
	}
	return nil
}

// appraise evaluates the TCB status as Intel's quote verification does, from the claims (as a
// release does, collateral.go), and sets it in c.
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
	in, err := tcbInputOf(c)
	if err != nil {
		return err
	}
	st, adv, dg, err := intel.AppraiseRecovery(vc, prev, since, in.evaluate, v.refuse)
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
	case (status.OutOfDate() || status.RelaunchAdvised()) && !v.o.AllowOutOfDate:
		return attest.NotAuthentic("tcb_status", fmt.Errorf("TCB status is %s%s", status, intel.AdvisoryText(adv)))
	}
	return nil
}

// tcbInput is what TCB appraisal reads, all of it taken from the claims.
type tcbInput struct {
	ext                                     *intel.PCKExtensions
	qe                                      *intel.EnclaveReport
	teeTCBSVN, teeTCBSVN2, mrSignerSeam, sa []byte
	td15                                    bool
}

func tcbInputOf(c *attest.Claims) (*tcbInput, error) {
	ext, qe, err := intel.RecomputeInput(c, IntelTDQEMRSigner, TDQEProdID)
	if err != nil {
		return nil, err
	}
	sa, ok := c.Attributes["seam_attributes"]
	in := &tcbInput{ext: ext, qe: qe, teeTCBSVN: c.Config[ClaimTEETCBSVN], mrSignerSeam: c.Measurements[ClaimMRSIGNERSEAM],
		sa: binary.LittleEndian.AppendUint64(nil, sa)}
	in.teeTCBSVN2, in.td15 = c.Config[ClaimTEETCBSVN2]
	if !ok || len(in.teeTCBSVN) != 16 || len(in.mrSignerSeam) != 48 || in.td15 && len(in.teeTCBSVN2) != 16 {
		return nil, fmt.Errorf("%w: the claims lack the TD's TCB fields", attest.ErrStaleClaims)
	}
	return in, nil
}

// evaluate computes the TD's TCB status and advisories under vc.
func (in *tcbInput) evaluate(vc *intel.Verified) (intel.Status, []string, error) {
	ti := vc.TCBInfo
	if ti.ID != "TDX" || ti.TCBType != 0 {
		return "", nil, attest.NotAuthentic("collateral."+intel.FileTCBInfo, fmt.Errorf("TCB info is for %s with TCB type %d, want TDX with type 0", ti.ID, ti.TCBType))
	}
	if err := intel.MatchPlatform(ti, in.ext); err != nil {
		return "", nil, err
	}
	qi := vc.QEIdentity
	if qi.ID != "TD_QE" {
		return "", nil, attest.NotAuthentic("collateral."+intel.FileQEIdentity, fmt.Errorf("QE identity is for %q, not TD_QE", qi.ID))
	}
	qeLevel, err := qi.Match(in.qe)
	if err != nil {
		return "", nil, attest.NotAuthentic("quote.qe_report", err)
	}
	modLevel, err := ti.TDXModuleLevel(in.teeTCBSVN, in.mrSignerSeam, in.sa)
	if err != nil {
		return "", nil, attest.NotAuthentic("quote.body.tdx_module", err)
	}
	platLevel, err := ti.PlatformLevel(in.ext, in.teeTCBSVN)
	if err != nil {
		return "", nil, attest.NotAuthentic("tcb_status", err)
	}
	// Fold the statuses together in the order Intel's quote verification library does: the TDX
	// module into the platform, then (TD 1.5) the relaunch check, then the QE.
	status, modStatus := platLevel.TCBStatus, intel.UpToDate
	if modLevel != nil {
		modStatus = modLevel.TCBStatus
		status = intel.Converge(status, modStatus)
	}
	if in.td15 && status != intel.Revoked {
		sgxLevel, err := ti.PlatformLevel(in.ext, nil)
		if err != nil {
			return "", nil, attest.NotAuthentic("tcb_status", err)
		}
		status = ti.Relaunch(in.teeTCBSVN2, sgxLevel.TCBStatus, status, modStatus, qeLevel.TCBStatus)
	}
	status = intel.Converge(status, qeLevel.TCBStatus)
	return status, intel.Advisories(platLevel, modLevel, qeLevel), nil
}

func claims(q *Quote, info *intel.PCKInfo, qe *intel.EnclaveReport) *attest.Claims {
	b := &q.Body
	hx := func(p []byte) attest.Hex { return bytes.Clone(p) }
	td := binary.LittleEndian.Uint64(b.TDAttributes[:])
	c := &attest.Claims{
		TEE:         attest.TDX,
		Measurement: hx(b.MRTD[:]),
		Measurements: map[string]attest.Hex{
			ClaimRTMR0:  hx(b.RTMR[0][:]),
			ClaimRTMR1:  hx(b.RTMR[1][:]),
			ClaimRTMR2:  hx(b.RTMR[2][:]),
			ClaimRTMR3:  hx(b.RTMR[3][:]),
			ClaimMRSEAM: hx(b.MRSEAM[:]),
			// Intel signs its TDX modules with MRSIGNERSEAM zero.
			ClaimMRSIGNERSEAM: hx(b.MRSIGNERSEAM[:]),
		},
		Config: map[string]attest.Hex{
			ClaimMRCONFIGID:  hx(b.MRCONFIGID[:]),
			ClaimMROWNER:     hx(b.MROWNER[:]),
			ClaimMROWNERCONF: hx(b.MROWNERCONFIG[:]),
			ClaimTEETCBSVN:   hx(b.TEETCBSVN[:]),
			// The PCK's SVNs, for appraising the recorded platform against new collateral.
			ClaimSGXTCBComponents: hx(info.Ext.TCBComponents[:]),
		},
		TCB: map[string]uint64{
			"pce_svn":          uint64(info.Ext.PCESVN),
			"qe_svn":           uint64(qe.ISVSVN),
			"tdx_module_svn":   uint64(b.TEETCBSVN[0]),
			"tdx_module_major": uint64(b.TEETCBSVN[1]),
		},
		Debug:              td&tdAttributeDebug != 0,
		Migration:          td&tdAttributeMigrate != 0,
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
			ClaimTDAttributes: td,
			ClaimXFAM:         binary.LittleEndian.Uint64(b.XFAM[:]),
			"seam_attributes": binary.LittleEndian.Uint64(b.SEAMAttributes[:]),
		},
	}
	intel.SetQEClaims(c, qe) // with the above, what a release recomputes the TCB status from
	if b.TD15 {
		c.Measurements[ClaimMRSERVICETD] = hx(b.MRSERVICETD[:])
		c.Config[ClaimTEETCBSVN2] = hx(b.TEETCBSVN2[:])
	}
	return c
}
