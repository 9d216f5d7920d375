// Package tdx verifies Intel TDX quotes (DCAP quote versions 4 and 5) and maps them onto
// attest.Claims.
//
// Verification follows Intel's: the attestation key signs the header and TD report, the PCK
// signs the QE report, the QE report binds the attestation key, the PCK chain goes to Intel's
// SGX Root CA, and with collateral (TCB info, QE identity, CRLs) the PCK is checked for
// revocation and the platform, TDX module and QE TCB statuses are evaluated and combined.
// Without collateral the evidence is still authenticated and TCBStatus is "unknown".
//
// It is not a policy engine: apart from refusing debug TDs and revoked or out-of-date TCBs by
// default (Options relax the latter two), what is acceptable is for package policies.
package tdx

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/intel"
)

// Options configure a Verifier. The zero value trusts Intel's SGX Root CA (embedded), uses no
// network, denies debug TDs and revoked or out-of-date TCBs, and reports TCB status "unknown"
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
	// AllowDebug accepts debug TDs, whose memory and registers the host can read.
	AllowDebug bool
	// AllowOutOfDate accepts OutOfDate and OutOfDateConfigurationNeeded TCB statuses, and the
	// TDRelaunchAdvised ones of TD 1.5 (launched on an out-of-date TDX module since updated).
	AllowOutOfDate bool
	// RequireCollateral denies evidence whose TCB cannot be appraised for want of collateral,
	// instead of reporting TCB status "unknown".
	RequireCollateral bool
}

// Verifier verifies TDX quotes. It is safe for concurrent use.
type Verifier struct {
	o     Options
	roots *intel.Roots
	src   *intel.Source

	dir     atomic.Pointer[dirCollateral]
	pcks    sync.Map // *intel.Chain -> *pckInfo
	pcksN   atomic.Int64
	online  sync.Map // fmspc/ca -> *intel.Verified
	onlineN atomic.Int64
}

type dirCollateral struct {
	raw      *intel.Collateral
	fmspc    string // lowercase
	verified atomic.Pointer[intel.Verified]
}

type pckInfo struct {
	ext *intel.PCKExtensions
	ca  string
	pub *ecdsa.PublicKey
}

// New returns a Verifier. With CollateralDir set, the directory must hold complete collateral.
func New(o Options) (*Verifier, error) {
	v := &Verifier{o: o, roots: intel.NewRoots(o.Root)}
	if o.PCSURL != "" {
		v.src = &intel.Source{
			Fetch:    intel.FetchOptions{BaseURL: o.PCSURL, RootCRLURL: o.RootCRLURL, Getter: o.Getter},
			CacheDir: o.CacheDir,
		}
	}
	if o.CollateralDir != "" {
		if err := v.ReloadCollateral(); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// ReloadCollateral re-reads Options.CollateralDir, for example after `trustctl collateral fetch`
// refreshed it.
func (v *Verifier) ReloadCollateral() error {
	c, err := intel.ReadDir(v.o.CollateralDir)
	if err != nil {
		return fmt.Errorf("tdx collateral directory %s: %w", v.o.CollateralDir, err)
	}
	info, _, _, err := intel.ParseTCBInfo(c.TCBInfo)
	if err != nil {
		return fmt.Errorf("tdx collateral directory %s: %w", v.o.CollateralDir, &intel.FileError{File: intel.FileTCBInfo, Err: err})
	}
	v.dir.Store(&dirCollateral{raw: c, fmspc: strings.ToLower(info.FMSPC)})
	return nil
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
	c := claims(q, info, qe)
	status, adv, err := v.appraise(ctx, ev, q, qe, pck, info, now)
	if err != nil {
		return nil, err
	}
	c.TCBStatus, c.Advisories = string(status), adv
	if c.Debug && !v.o.AllowDebug {
		return nil, attest.NotAuthentic("td_attributes.debug", errors.New("the TD is a debug TD: the host can read its memory"))
	}
	return c, nil
}

// authenticate checks the signatures and the binding that make the quote Intel's.
func (v *Verifier) authenticate(q *Quote, now time.Time) (*intel.Chain, *pckInfo, error) {
	ak, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, q.AttestationKey...))
	if err != nil {
		return nil, nil, attest.NotAuthentic("quote.attestation_key", fmt.Errorf("not a P-256 point: %w", err))
	}
	if !intel.VerifyRawP256(ak, q.Signed, q.Signature) {
		return nil, nil, attest.NotAuthentic("quote.signature", errors.New("header and TD report are not signed by the attestation key"))
	}
	pck, err := v.roots.VerifyPEM(q.PCKChain, now)
	if err != nil {
		return nil, nil, attest.NotAuthentic("quote.pck_chain", err)
	}
	info, err := v.pckInfo(pck)
	if err != nil {
		return nil, nil, err
	}
	if !intel.VerifyRawP256(info.pub, q.QEReport, q.QEReportSignature) {
		return nil, nil, attest.NotAuthentic("quote.qe_report_signature", errors.New("QE report is not signed by the PCK"))
	}
	// The QE vouches for the attestation key by putting SHA-256(key || QE auth data) in the first
	// half of its report data; the second half is zero.
	h := sha256.New()
	h.Write(q.AttestationKey)
	h.Write(q.QEAuthData)
	var want [64]byte
	h.Sum(want[:0])
	if !bytes.Equal(q.QEReport[320:384], want[:]) {
		return nil, nil, attest.NotAuthentic("quote.qe_report.report_data", errors.New("QE report data does not bind the attestation key"))
	}
	return pck, info, nil
}

// IntelTDQEMRSigner is the MRSIGNER of Intel's TD quoting enclave, and TDQEProdID its
// ISVPRODID, as Intel's TD_QE identity publishes them.
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

func (v *Verifier) pckInfo(ch *intel.Chain) (*pckInfo, error) {
	if p, ok := v.pcks.Load(ch); ok {
		return p.(*pckInfo), nil
	}
	if cn := strings.TrimSpace(ch.Leaf.Subject.CommonName); cn != "Intel SGX PCK Certificate" {
		return nil, attest.NotAuthentic("quote.pck_chain", fmt.Errorf("leaf %q is not a PCK certificate", cn))
	}
	ca, err := intel.PCKCAKind(ch.Leaf)
	if err != nil {
		return nil, attest.NotAuthentic("quote.pck_chain", err)
	}
	ext, err := intel.ParsePCKExtensions(ch.Leaf)
	if err != nil {
		return nil, attest.NotAuthentic("quote.pck_chain.sgx_extensions", err)
	}
	pub, ok := ch.Leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, attest.NotAuthentic("quote.pck_chain", errors.New("PCK key is not ECDSA P-256"))
	}
	p := &pckInfo{ext: ext, ca: ca, pub: pub}
	// Entries are per verified chain, which the chain cache bounds; a chain evicted there
	// leaves an entry here that is merely unused, so clear alongside past the same bound.
	if v.pcksN.Add(1) > 4096 {
		v.pcks.Clear()
		v.pcksN.Store(0)
	}
	v.pcks.Store(ch, p)
	return p, nil
}

// collateral finds verified collateral for the platform, or nil when there is none to be had.
func (v *Verifier) collateral(ctx context.Context, ev *attest.Evidence, fmspc, ca string, now time.Time) (*intel.Verified, error) {
	if len(ev.Collateral) > 0 {
		c, err := intel.CollateralFromFiles(ev.Collateral)
		if err != nil {
			return nil, collateralErr(err)
		}
		vc, err := v.roots.VerifyCollateral(c, now)
		if err != nil {
			return nil, collateralErr(err)
		}
		return vc, nil
	}
	if d := v.dir.Load(); d != nil && (d.fmspc == fmspc || v.src == nil) {
		if d.fmspc != fmspc {
			return nil, attest.Unavailable("collateral."+intel.FileTCBInfo, fmt.Errorf("collateral directory is for FMSPC %s, the quote's platform is %s", d.fmspc, fmspc))
		}
		if vc := d.verified.Load(); vc != nil {
			if err := vc.ValidAt(now); err != nil {
				return nil, collateralErr(err)
			}
			return vc, nil
		}
		vc, err := v.roots.VerifyCollateral(d.raw, now)
		if err != nil {
			return nil, collateralErr(err)
		}
		d.verified.Store(vc)
		return vc, nil
	}
	if v.src == nil {
		return nil, nil
	}
	key := fmspc + "/" + ca
	if c, ok := v.online.Load(key); ok {
		if vc := c.(*intel.Verified); vc.ValidAt(now) == nil {
			return vc, nil
		}
	}
	c, err := v.src.Get(ctx, fmspc, ca, now)
	if err != nil {
		return nil, attest.Unavailable("collateral", err)
	}
	vc, err := v.roots.VerifyCollateral(c, now)
	if err != nil {
		return nil, collateralErr(err)
	}
	if v.onlineN.Add(1) > 1024 {
		v.online.Clear()
		v.onlineN.Store(0)
	}
	v.online.Store(key, vc)
	return vc, nil
}

func collateralErr(err error) error {
	var fe *intel.FileError
	if errors.As(err, &fe) {
		return attest.NotAuthentic("collateral."+fe.File, fe.Err)
	}
	return attest.NotAuthentic("collateral", err)
}

// appraise evaluates the TCB status as Intel's quote verification does.
func (v *Verifier) appraise(ctx context.Context, ev *attest.Evidence, q *Quote, qe *intel.EnclaveReport, pck *intel.Chain, info *pckInfo, now time.Time) (intel.Status, []string, error) {
	fmspc := info.ext.FMSPCHex()
	vc, err := v.collateral(ctx, ev, fmspc, info.ca, now)
	if err != nil {
		return "", nil, err
	}
	if vc == nil {
		if v.o.RequireCollateral {
			return "", nil, attest.Unavailable("collateral", errors.New("no collateral for this platform and none may be fetched"))
		}
		return intel.Unknown, nil, nil
	}
	if err := vc.CheckPCK(pck); err != nil {
		return "", nil, collateralOrRevoked(err)
	}
	ti := vc.TCBInfo
	if ti.ID != "TDX" || ti.TCBType != 0 {
		return "", nil, attest.NotAuthentic("collateral."+intel.FileTCBInfo, fmt.Errorf("TCB info is for %s with TCB type %d, want TDX with type 0", ti.ID, ti.TCBType))
	}
	// Intel serves FMSPCs in upper case, certificates hold bytes: compare without case.
	if !strings.EqualFold(ti.FMSPC, fmspc) {
		return "", nil, attest.NotAuthentic("collateral."+intel.FileTCBInfo, fmt.Errorf("TCB info is for FMSPC %s, the PCK for %s", strings.ToLower(ti.FMSPC), fmspc))
	}
	if !strings.EqualFold(ti.PCEID, info.ext.PCEIDHex()) {
		return "", nil, attest.NotAuthentic("collateral."+intel.FileTCBInfo, fmt.Errorf("TCB info is for PCE ID %s, the PCK for %s", ti.PCEID, info.ext.PCEIDHex()))
	}
	qi := vc.QEIdentity
	if qi.ID != "TD_QE" {
		return "", nil, attest.NotAuthentic("collateral."+intel.FileQEIdentity, fmt.Errorf("QE identity is for %q, not TD_QE", qi.ID))
	}
	qeLevel, err := qi.Match(qe)
	if err != nil {
		return "", nil, attest.NotAuthentic("quote.qe_report", err)
	}
	b := &q.Body
	modLevel, err := ti.TDXModuleLevel(b.TEETCBSVN[:], b.MRSIGNERSEAM[:], b.SEAMAttributes[:])
	if err != nil {
		return "", nil, attest.NotAuthentic("quote.body.tdx_module", err)
	}
	platLevel, err := ti.PlatformLevel(info.ext, b.TEETCBSVN[:])
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
	if b.TD15 && status != intel.Revoked {
		sgxLevel, err := ti.PlatformLevel(info.ext, nil)
		if err != nil {
			return "", nil, attest.NotAuthentic("tcb_status", err)
		}
		status = ti.Relaunch(b.TEETCBSVN2[:], sgxLevel.TCBStatus, status, modStatus, qeLevel.TCBStatus)
	}
	status = intel.Converge(status, qeLevel.TCBStatus)
	adv := intel.Advisories(platLevel, modLevel, qeLevel)
	switch {
	case status == intel.Revoked:
		return "", nil, attest.NotAuthentic("tcb_status", fmt.Errorf("TCB status is Revoked%s", advText(adv)))
	case (status.OutOfDate() || status.RelaunchAdvised()) && !v.o.AllowOutOfDate:
		return "", nil, attest.NotAuthentic("tcb_status", fmt.Errorf("TCB status is %s%s", status, advText(adv)))
	}
	return status, adv, nil
}

func advText(adv []string) string {
	if len(adv) == 0 {
		return ""
	}
	return " (advisories " + strings.Join(adv, ", ") + ")"
}

func collateralOrRevoked(err error) error {
	var fe *intel.FileError
	if errors.As(err, &fe) {
		return collateralErr(err)
	}
	return attest.NotAuthentic("quote.pck_chain.revoked", err)
}

func claims(q *Quote, info *pckInfo, qe *intel.EnclaveReport) *attest.Claims {
	b := &q.Body
	hx := func(p []byte) attest.Hex { return bytes.Clone(p) }
	td := binary.LittleEndian.Uint64(b.TDAttributes[:])
	c := &attest.Claims{
		TEE:         attest.TDX,
		Measurement: hx(b.MRTD[:]),
		Measurements: map[string]attest.Hex{
			"rtmr0":  hx(b.RTMR[0][:]),
			"rtmr1":  hx(b.RTMR[1][:]),
			"rtmr2":  hx(b.RTMR[2][:]),
			"rtmr3":  hx(b.RTMR[3][:]),
			"mrseam": hx(b.MRSEAM[:]),
			// Intel signs its TDX modules with MRSIGNERSEAM zero.
			"mrsignerseam": hx(b.MRSIGNERSEAM[:]),
		},
		Config: map[string]attest.Hex{
			"mrconfigid":    hx(b.MRCONFIGID[:]),
			"mrowner":       hx(b.MROWNER[:]),
			"mrownerconfig": hx(b.MROWNERCONFIG[:]),
			"tee_tcb_svn":   hx(b.TEETCBSVN[:]),
		},
		TCB: map[string]uint64{
			"pce_svn":          uint64(info.ext.PCESVN),
			"qe_svn":           uint64(qe.ISVSVN),
			"tdx_module_svn":   uint64(b.TEETCBSVN[0]),
			"tdx_module_major": uint64(b.TEETCBSVN[1]),
		},
		Debug:      td&tdAttributeDebug != 0,
		Migration:  td&tdAttributeMigrate != 0,
		SMT:        info.ext.SMTEnabled != nil && *info.ext.SMTEnabled,
		ReportData: hx(b.ReportData[:]),
		Platform: map[string]string{
			"fmspc":         info.ext.FMSPCHex(),
			"signer":        "pck",
			"pce_id":        info.ext.PCEIDHex(),
			"pck_ca":        info.ca,
			"quote_version": strconv.Itoa(int(q.Version)),
		},
		Attributes: map[string]uint64{
			"td_attributes":   td,
			"xfam":            binary.LittleEndian.Uint64(b.XFAM[:]),
			"seam_attributes": binary.LittleEndian.Uint64(b.SEAMAttributes[:]),
		},
	}
	if b.TD15 {
		c.Measurements["mrservicetd"] = hx(b.MRSERVICETD[:])
		c.Config["tee_tcb_svn_2"] = hx(b.TEETCBSVN2[:])
	}
	return c
}
