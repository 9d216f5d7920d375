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
// It is not a policy engine: apart from refusing debug enclaves and revoked or out-of-date TCBs
// by default (Options relax the latter two, and AllowDebug the former), which MRENCLAVE,
// MRSIGNER, product or SVN is acceptable is for package policies.
package sgx

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
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
// network, denies debug enclaves and revoked or out-of-date TCBs, and reports TCB status
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
	// AllowDebug accepts debug enclaves (ATTRIBUTES.DEBUG set: the host can read and write
	// their memory) and reports them with Claims.Debug true, for policies to decide.
	AllowDebug bool
	// AllowOutOfDate accepts OutOfDate and OutOfDateConfigurationNeeded TCB statuses.
	AllowOutOfDate bool
	// RequireCollateral denies quotes whose TCB cannot be appraised for want of collateral,
	// instead of reporting TCB status "unknown".
	RequireCollateral bool
}

// Verifier verifies SGX quotes. It is safe for concurrent use.
type Verifier struct {
	o     Options
	roots *intel.Roots
	src   *intel.Source

	dir     atomic.Pointer[dirCollateral]
	pcks    sync.Map // *intel.Chain -> *pckInfo
	pcksN   atomic.Int64
	online  sync.Map // fmspc/ca -> *intel.Collateral
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

// maxCached bounds the per-PCK and online collateral caches; past it a cache is dropped and
// rebuilt, which costs only re-parsing.
const maxCached = 4096

// New returns a Verifier. With CollateralDir set, the directory must hold complete SGX
// collateral.
func New(o Options) (*Verifier, error) {
	v := &Verifier{o: o, roots: intel.NewRoots(o.Root)}
	if o.PCSURL != "" {
		v.src = &intel.Source{
			Fetch:    intel.FetchOptions{BaseURL: o.PCSURL, RootCRLURL: o.RootCRLURL, Getter: o.Getter, SGX: true},
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

// ReloadCollateral re-reads Options.CollateralDir, for example after `trustctl collateral fetch
// --tee sgx` refreshed it.
func (v *Verifier) ReloadCollateral() error {
	c, err := intel.ReadDir(v.o.CollateralDir)
	if err != nil {
		return fmt.Errorf("sgx collateral directory %s: %w", v.o.CollateralDir, err)
	}
	info, _, _, err := intel.ParseTCBInfo(c.TCBInfo)
	if err != nil {
		return fmt.Errorf("sgx collateral directory %s: %w", v.o.CollateralDir, &intel.FileError{File: intel.FileTCBInfo, Err: err})
	}
	if info.ID != "SGX" {
		return fmt.Errorf("sgx collateral directory %s: %w", v.o.CollateralDir, &intel.FileError{File: intel.FileTCBInfo, Err: fmt.Errorf("TCB info is for %s, not SGX", info.ID)})
	}
	v.dir.Store(&dirCollateral{raw: c, fmspc: strings.ToLower(info.FMSPC)})
	return nil
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
	if q.Body.Debug() && !v.o.AllowDebug {
		return nil, attest.NotAuthentic("quote.body.attributes.debug", errors.New("the enclave is a debug enclave: the host can read and write its memory"))
	}
	status, adv, err := v.appraise(ctx, ev, qe, pck, info, now)
	if err != nil {
		return nil, err
	}
	c := claims(q, info, qe)
	c.TCBStatus, c.Advisories = string(status), adv
	return c, nil
}

// authenticate checks the signatures and the binding that make the quote Intel's.
func (v *Verifier) authenticate(q *Quote, now time.Time) (*intel.Chain, *pckInfo, error) {
	ak, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, q.AttestationKey...))
	if err != nil {
		return nil, nil, attest.NotAuthentic("quote.attestation_key", fmt.Errorf("not a P-256 point: %w", err))
	}
	if !intel.VerifyRawP256(ak, q.Signed, q.Signature) {
		return nil, nil, attest.NotAuthentic("quote.signature", errors.New("header and enclave report are not signed by the attestation key"))
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
	// Entries are per verified chain, which the chain cache bounds; past the same bound drop
	// them all rather than track which chains were evicted there.
	if v.pcksN.Add(1) > maxCached {
		v.pcks.Clear()
		v.pcksN.Store(0)
	}
	v.pcks.Store(ch, p)
	return p, nil
}

// collateral finds verified collateral for the platform, or nil when there is none to be had.
// The verifier's own sources (the directory for this FMSPC, then PCS) come first: collateral
// carried by the evidence comes from the party being appraised, who could pick an older TCB
// info that is still within its nextUpdate but predates a TCB recovery. It is used only when
// the verifier has nothing of its own for the platform.
func (v *Verifier) collateral(ctx context.Context, ev *attest.Evidence, fmspc, ca string, now time.Time) (*intel.Verified, error) {
	d := v.dir.Load()
	switch {
	case d != nil && d.fmspc == fmspc:
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
	case v.src != nil:
		return v.fetch(ctx, fmspc, ca, now)
	case len(ev.Collateral) > 0:
		c, err := intel.CollateralFromFiles(ev.Collateral)
		if err != nil {
			return nil, collateralErr(err)
		}
		vc, err := v.roots.VerifyCollateral(c, now)
		if err != nil {
			return nil, collateralErr(err)
		}
		return vc, nil
	case d != nil:
		return nil, attest.Unavailable("collateral."+intel.FileTCBInfo, fmt.Errorf("collateral directory is for FMSPC %s, the quote's platform is %s", d.fmspc, fmspc))
	}
	return nil, nil
}

// fetch gets collateral from PCS or a PCCS, remembering it per platform and PCK CA.
func (v *Verifier) fetch(ctx context.Context, fmspc, ca string, now time.Time) (*intel.Verified, error) {
	key := fmspc + "/" + ca
	if c, ok := v.online.Load(key); ok {
		if vc, err := v.roots.VerifyCollateral(c.(*intel.Collateral), now); err == nil {
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
	if v.onlineN.Add(1) > maxCached {
		v.online.Clear()
		v.onlineN.Store(0)
	}
	v.online.Store(key, c)
	return vc, nil
}

func collateralErr(err error) error {
	var fe *intel.FileError
	if errors.As(err, &fe) {
		return attest.NotAuthentic("collateral."+fe.File, fe.Err)
	}
	return attest.NotAuthentic("collateral", err)
}

// appraise evaluates the TCB status as Intel's quote verification does for SGX: the platform's
// level from the PCK certificate's TCB (CPUSVN components and PCESVN) in the SGX TCB info,
// folded with the QE's level from the QE identity.
func (v *Verifier) appraise(ctx context.Context, ev *attest.Evidence, qe *intel.EnclaveReport, pck *intel.Chain, info *pckInfo, now time.Time) (intel.Status, []string, error) {
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
		var fe *intel.FileError
		if errors.As(err, &fe) {
			return "", nil, collateralErr(err)
		}
		return "", nil, attest.NotAuthentic("quote.pck_chain.revoked", err)
	}
	ti := vc.TCBInfo
	if ti.ID != "SGX" {
		return "", nil, attest.NotAuthentic("collateral."+intel.FileTCBInfo, fmt.Errorf("TCB info is for %s, not SGX", ti.ID))
	}
	// Intel serves FMSPCs in upper case, certificates hold bytes: compare without case.
	if !strings.EqualFold(ti.FMSPC, fmspc) {
		return "", nil, attest.NotAuthentic("collateral."+intel.FileTCBInfo, fmt.Errorf("TCB info is for FMSPC %s, the PCK for %s", strings.ToLower(ti.FMSPC), fmspc))
	}
	if !strings.EqualFold(ti.PCEID, info.ext.PCEIDHex()) {
		return "", nil, attest.NotAuthentic("collateral."+intel.FileTCBInfo, fmt.Errorf("TCB info is for PCE ID %s, the PCK for %s", ti.PCEID, info.ext.PCEIDHex()))
	}
	qi := vc.QEIdentity
	if qi.ID != "QE" {
		return "", nil, attest.NotAuthentic("collateral."+intel.FileQEIdentity, fmt.Errorf("QE identity is for %q, not the SGX QE", qi.ID))
	}
	qeLevel, err := qi.Match(qe)
	if err != nil {
		return "", nil, attest.NotAuthentic("quote.qe_report", err)
	}
	platLevel, err := ti.PlatformLevel(info.ext, nil)
	if err != nil {
		return "", nil, attest.NotAuthentic("tcb_status", err)
	}
	status := intel.Converge(platLevel.TCBStatus, qeLevel.TCBStatus)
	adv := intel.Advisories(platLevel, qeLevel)
	switch {
	case status == intel.Revoked:
		return "", nil, attest.NotAuthentic("tcb_status", fmt.Errorf("TCB status is Revoked%s", advText(adv)))
	case status.OutOfDate() && !v.o.AllowOutOfDate:
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

// claims maps a verified quote onto the normalized claims. The names policies use:
// measurement (MRENCLAVE), measurements.mrsigner, attributes.isv_prod_id, tcb.isv_svn, debug
// and tcb_status.
func claims(q *Quote, info *pckInfo, qe *intel.EnclaveReport) *attest.Claims {
	b := &q.Body
	hx := func(p []byte) attest.Hex { return bytes.Clone(p) }
	return &attest.Claims{
		TEE:         attest.SGX,
		Measurement: hx(b.MRENCLAVE[:]),
		Measurements: map[string]attest.Hex{
			"mrsigner": hx(b.MRSIGNER[:]),
		},
		Config: map[string]attest.Hex{
			"config_id":       hx(b.ConfigID[:]),
			"isv_ext_prod_id": hx(b.ISVExtProdID[:]),
			"isv_family_id":   hx(b.ISVFamilyID[:]),
			"cpu_svn":         hx(b.CPUSVN[:]),
		},
		TCB: map[string]uint64{
			"isv_svn":    uint64(b.ISVSVN),
			"config_svn": uint64(b.ConfigSVN),
			"pce_svn":    uint64(info.ext.PCESVN),
			"qe_svn":     uint64(qe.ISVSVN),
		},
		Debug:      b.Debug(),
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
			"isv_prod_id":      uint64(b.ISVProdID),
			"attributes_flags": b.Flags,
			"xfrm":             b.XFRM,
			"misc_select":      uint64(b.MiscSelect),
		},
	}
}
