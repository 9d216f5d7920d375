package intel

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/sgx/sgxquote"
)

// This file holds the half of DCAP quote verification that does not depend on the TEE: the
// attestation key, PCK and QE report signatures, the PCK certificate, and where collateral comes
// from. attest/sgx and attest/tdx parse their quotes, decide in which order the collateral
// sources count, and appraise the TCB; errors are attest errors with the field names both use.

// PCKInfo is what a verified PCK certificate tells quote verification.
type PCKInfo struct {
	Ext *PCKExtensions
	// CA is the issuing PCK CA: CAPlatform or CAProcessor.
	CA  string
	Pub *ecdsa.PublicKey
}

// QuoteSignature is the signature data of an ECDSA P-256 DCAP quote, SGX and TDX alike.
type QuoteSignature struct {
	// Signed is what the attestation key signed: the header and the body.
	Signed            []byte
	Signature         []byte // r||s, 64 bytes
	AttestationKey    []byte // X||Y, 64 bytes
	QEReport          []byte // 384 bytes, signed by the PCK
	QEReportSignature []byte // r||s, 64 bytes
	QEAuthData        []byte
	PCKChain          []byte // PEM, leaf first
}

// QuoteVerifierOptions configure a QuoteVerifier.
type QuoteVerifierOptions struct {
	// Root replaces the Intel SGX Root CA; nil means the embedded one.
	Root *x509.Certificate
	// PCSURL, when set, enables online collateral through a Source with RootCRLURL, Getter and
	// CacheDir (see FetchOptions and Source).
	PCSURL     string
	RootCRLURL string
	Getter     Getter
	CacheDir   string
	// SGX fetches SGX collateral instead of TDX collateral.
	SGX bool
	// MaxOnline bounds the online collateral cache (by FMSPC and PCK CA); past it the cache is
	// dropped and rebuilt.
	MaxOnline int
	// CacheObserver, if set, learns whether each online collateral lookup was answered from
	// the cache (for metrics). It must not block.
	CacheObserver func(hit bool)
	// Freshness of online collateral (see freshness.go); the zero value takes the defaults.
	Freshness Freshness
}

// QuoteVerifier authenticates DCAP quotes up to the QE report and finds verified collateral for
// their platform: from an offline directory, online (PCS or a PCCS), or the evidence. It is
// safe for concurrent use.
type QuoteVerifier struct {
	roots *Roots
	src   *Source
	dir   atomic.Pointer[Offline]
	// platforms is offline collateral by FMSPC, from an imported bundle (platforms.go).
	platforms atomic.Pointer[map[string]*Offline]
	pcks      boundedMap[*Chain, *PCKInfo]
	qes       boundedMap[qeKey, bool]
	seen      func(hit bool)
	fresh     Freshness
	state     onlineState
	// store keeps fetched online sets: Freshness.Store, or the disk cache in CacheDir.
	store attest.CollateralStore
}

// maxCachedPCKs bounds the per-PCK cache. Entries are per verified chain, which the chain cache
// bounds at the same number; past it they are all dropped rather than tracking which chains
// were evicted there.
const maxCachedPCKs = maxCachedChains

// maxCachedQEReports bounds the cache of QE report signatures that verified.
const maxCachedQEReports = 4 * maxCachedChains

// qeKey names a QE report signature that verified: the verified PCK chain (one object per
// chain, from the chain cache) and the SHA-256 of the exact QE report and signature bytes.
type qeKey struct {
	pck *Chain
	sum [sha256.Size]byte
}

// NewQuoteVerifier returns a QuoteVerifier without offline collateral; see LoadDir.
func NewQuoteVerifier(o QuoteVerifierOptions) *QuoteVerifier {
	v := &QuoteVerifier{roots: NewRoots(o.Root), seen: o.CacheObserver, fresh: o.Freshness.withDefaults(), store: o.Freshness.Store}
	if v.store == nil && o.CacheDir != "" {
		v.store = DiskStore{Dir: o.CacheDir}
	}
	if v.seen == nil {
		v.seen = func(bool) {}
	}
	v.pcks.max = maxCachedPCKs
	v.qes.max = maxCachedQEReports
	v.state.max = o.MaxOnline
	if o.PCSURL != "" {
		v.src = &Source{
			Fetch:    FetchOptions{BaseURL: o.PCSURL, RootCRLURL: o.RootCRLURL, Getter: o.Getter, SGX: o.SGX},
			CacheDir: o.CacheDir,
		}
	}
	return v
}

// boundedMap is a sync.Map that is cleared whole once more than max entries were stored, which
// costs only recomputing them.
type boundedMap[K comparable, V any] struct {
	m   sync.Map
	n   atomic.Int64
	max int64
}

func (b *boundedMap[K, V]) load(k K) (V, bool) {
	x, ok := b.m.Load(k)
	if !ok {
		var zero V
		return zero, false
	}
	return x.(V), true
}

func (b *boundedMap[K, V]) store(k K, v V) {
	if b.n.Add(1) > b.max {
		b.m.Clear()
		b.n.Store(0)
	}
	b.m.Store(k, v)
}

// Authenticate checks the signatures and the binding that make a quote Intel's: the attestation
// key signs s.Signed (whose body the error message calls body, e.g. "TD report"), the PCK chain
// goes to the root, the PCK signs the QE report, and the QE report binds the attestation key.
func (v *QuoteVerifier) Authenticate(s *QuoteSignature, body string, now time.Time) (*Chain, *PCKInfo, error) {
	ak, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, s.AttestationKey...))
	if err != nil {
		return nil, nil, attest.NotAuthentic("quote.attestation_key", fmt.Errorf("not a P-256 point: %w", err))
	}
	if !VerifyRawP256(ak, s.Signed, s.Signature) {
		return nil, nil, attest.NotAuthentic("quote.signature", fmt.Errorf("header and %s are not signed by the attestation key", body))
	}
	pck, err := v.roots.VerifyPEM(s.PCKChain, now)
	if err != nil {
		return nil, nil, attest.NotAuthentic("quote.pck_chain", err)
	}
	info, err := v.pckInfo(pck)
	if err != nil {
		return nil, nil, err
	}
	// A platform's QE report and its signature are the same in every quote: check the signature
	// once per exact bytes under a verified chain. Only successes are remembered.
	qh := sha256.New()
	qh.Write(s.QEReport)
	qh.Write(s.QEReportSignature)
	k := qeKey{pck: pck}
	qh.Sum(k.sum[:0])
	if _, ok := v.qes.load(k); !ok {
		if !VerifyRawP256(info.Pub, s.QEReport, s.QEReportSignature) {
			return nil, nil, attest.NotAuthentic("quote.qe_report_signature", errors.New("QE report is not signed by the PCK"))
		}
		v.qes.store(k, true)
	}
	// The QE vouches for the attestation key by putting SHA-256(key || QE auth data) in the first
	// half of its report data; the second half is zero.
	h := sha256.New()
	h.Write(s.AttestationKey)
	h.Write(s.QEAuthData)
	var want [64]byte
	h.Sum(want[:0])
	if !bytes.Equal(s.QEReport[320:384], want[:]) {
		return nil, nil, attest.NotAuthentic("quote.qe_report.report_data", errors.New("QE report data does not bind the attestation key"))
	}
	return pck, info, nil
}

// pckInfo checks that a verified chain's leaf is a P-256 PCK certificate and reads its SGX
// extensions, once per chain.
func (v *QuoteVerifier) pckInfo(ch *Chain) (*PCKInfo, error) {
	if p, ok := v.pcks.load(ch); ok {
		return p, nil
	}
	if cn := strings.TrimSpace(ch.Leaf.Subject.CommonName); cn != "Intel SGX PCK Certificate" {
		return nil, attest.NotAuthentic("quote.pck_chain", fmt.Errorf("leaf %q is not a PCK certificate", cn))
	}
	ca, err := PCKCAKind(ch.Leaf)
	if err != nil {
		return nil, attest.NotAuthentic("quote.pck_chain", err)
	}
	ext, err := ParsePCKExtensions(ch.Leaf)
	if err != nil {
		return nil, attest.NotAuthentic("quote.pck_chain.sgx_extensions", err)
	}
	pub, ok := ch.Leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, attest.NotAuthentic("quote.pck_chain", errors.New("PCK key is not ECDSA P-256"))
	}
	p := &PCKInfo{Ext: ext, CA: ca, Pub: pub}
	v.pcks.store(ch, p)
	return p, nil
}

// Offline is the collateral of an offline directory, for one FMSPC.
type Offline struct {
	raw      *Collateral
	fmspc    string // lowercase
	verified atomic.Pointer[Verified]
	// floor is the newest verified set of the platform this one replaced (platforms.go).
	floor *Verified
}

// FMSPC is the platform the directory's TCB info is for, in lowercase hex.
func (d *Offline) FMSPC() string { return d.fmspc }

// Mismatch is the error for a quote from platform fmspc when the directory is for another.
func (d *Offline) Mismatch(fmspc string) error {
	return attest.Unavailable("collateral."+FileTCBInfo, fmt.Errorf("collateral directory is for FMSPC %s, the quote's platform is %s", d.fmspc, fmspc))
}

// LoadDir reads the collateral directory dir and makes it the offline collateral, replacing
// any earlier one. Errors name tee ("sgx", "tdx") and dir. With wantID set, the TCB info must
// be for that TEE ("SGX", "TDX").
func (v *QuoteVerifier) LoadDir(dir, tee, wantID string) error {
	c, err := ReadDir(dir)
	if err != nil {
		return fmt.Errorf("%s collateral directory %s: %w", tee, dir, err)
	}
	info, _, _, err := ParseTCBInfo(c.TCBInfo)
	if err != nil {
		return fmt.Errorf("%s collateral directory %s: %w", tee, dir, &FileError{File: FileTCBInfo, Err: err})
	}
	if wantID != "" && info.ID != wantID {
		return fmt.Errorf("%s collateral directory %s: %w", tee, dir, &FileError{File: FileTCBInfo, Err: fmt.Errorf("TCB info is for %s, not %s", info.ID, wantID)})
	}
	v.dir.Store(&Offline{raw: c, fmspc: strings.ToLower(info.FMSPC)})
	return nil
}

// Offline returns the offline collateral, or nil when no directory was loaded.
func (v *QuoteVerifier) Offline() *Offline { return v.dir.Load() }

// VerifyOffline returns d's collateral verified at now; the verification is done once and
// afterwards only the validity windows are checked.
func (v *QuoteVerifier) VerifyOffline(d *Offline, now time.Time) (*Verified, error) {
	if vc := d.verified.Load(); vc != nil {
		if err := vc.ValidAt(now); err != nil {
			return nil, CollateralError(err)
		}
		return vc, nil
	}
	vc, err := v.roots.VerifyCollateral(d.raw, now)
	if err != nil {
		return nil, CollateralError(err)
	}
	d.verified.Store(vc)
	return vc, nil
}

// FromEvidence verifies the collateral files evidence carries (by file name, see Files) at now.
func (v *QuoteVerifier) FromEvidence(files map[string][]byte, now time.Time) (*Verified, error) {
	c, err := CollateralFromFiles(files)
	if err != nil {
		return nil, CollateralError(err)
	}
	vc, err := v.roots.VerifyCollateral(c, now)
	if err != nil {
		return nil, CollateralError(err)
	}
	return vc, nil
}

// Collateral finds verified collateral for a platform, or nil when there is none to be had.
// trustd's own sources come first: the offline directory when it is for this platform, then
// PCS or a PCCS, and only then collateral the evidence carries. The order matters: collateral
// sent by the attester could be an older TCB info, still within its validity window, from
// before a TCB recovery, and so report a better status than Intel gives the platform today.
func (v *QuoteVerifier) Collateral(ctx context.Context, evidence map[string][]byte, fmspc, ca string, now time.Time) (*Verified, error) {
	d := v.Offline()
	switch {
	case d != nil && d.FMSPC() == fmspc:
		return v.VerifyOffline(d, now)
	case v.platform(fmspc) != nil:
		return v.VerifyOffline(v.platform(fmspc), now)
	case v.CanFetch():
		return v.Fetch(ctx, fmspc, ca, now)
	case len(evidence) > 0:
		vc, err := v.FromEvidence(evidence, now)
		if err != nil {
			return nil, err
		}
		return vc, v.checkSupplied(fmspc, ca, vc)
	case d != nil:
		return nil, d.Mismatch(fmspc)
	}
	return nil, nil
}

// CanFetch reports whether online collateral is configured.
func (v *QuoteVerifier) CanFetch() bool { return v.src != nil }

// Fetch gets collateral for the platform and PCK CA from PCS or a PCCS, verified at now,
// remembering it per platform and CA for one refresh interval (see Freshness). Only call it
// when CanFetch.
func (v *QuoteVerifier) Fetch(ctx context.Context, fmspc, ca string, now time.Time) (*Verified, error) {
	return v.fetchFresh(ctx, fmspc, ca, now)
}

// CollateralError reports a collateral failure as not authentic, naming the file when err does.
func CollateralError(err error) error {
	var fe *FileError
	if errors.As(err, &fe) {
		return attest.NotAuthentic("collateral."+fe.File, fe.Err)
	}
	return attest.NotAuthentic("collateral", err)
}

// RevocationError reports a failure of Verified.CheckPCK: a collateral failure when it names a
// file, otherwise a revoked PCK chain.
func RevocationError(err error) error {
	var fe *FileError
	if errors.As(err, &fe) {
		return CollateralError(err)
	}
	return attest.NotAuthentic("quote.pck_chain.revoked", err)
}

// NoCollateral is the outcome of appraisal without collateral: TCB status Unknown, or when
// collateral is required an Unavailable error.
func NoCollateral(require bool) (Status, error) {
	if require {
		return "", attest.Unavailable("collateral", errors.New("no collateral for this platform and none may be fetched"))
	}
	return Unknown, nil
}

// MatchPlatform checks that TCB info ti is for the FMSPC and PCE ID of the PCK extensions.
func MatchPlatform(ti *TCBInfo, ext *PCKExtensions) error {
	fmspc := ext.FMSPCHex()
	// Intel serves FMSPCs in upper case, certificates hold bytes: compare without case.
	if !strings.EqualFold(ti.FMSPC, fmspc) {
		return attest.NotAuthentic("collateral."+FileTCBInfo, fmt.Errorf("TCB info is for FMSPC %s, the PCK for %s", strings.ToLower(ti.FMSPC), fmspc))
	}
	if !strings.EqualFold(ti.PCEID, ext.PCEIDHex()) {
		return attest.NotAuthentic("collateral."+FileTCBInfo, fmt.Errorf("TCB info is for PCE ID %s, the PCK for %s", ti.PCEID, ext.PCEIDHex()))
	}
	return nil
}

// AdvisoryText is " (advisories A, B)" for error messages, or "" without advisories.
func AdvisoryText(adv []string) string {
	if len(adv) == 0 {
		return ""
	}
	return " (advisories " + strings.Join(adv, ", ") + ")"
}

// QEVendorID is the QE vendor ID of Intel's quoting enclaves, SGX and TD alike.
var QEVendorID = sgxquote.IntelQEVendorID

// QEReportSignatureSize is the size of the PCK's r||s signature over the QE report.
const QEReportSignatureSize = sgxquote.QEReportSignatureSize

// SplitQEReportCertData splits the QE report certification data of a quote; the layout is
// sgxquote's (see sgxquote.SplitQEReportCertData).
func SplitQEReportCertData(s []byte) (qeReport, qeReportSig, qeAuthData, rest []byte, err error) {
	return sgxquote.SplitQEReportCertData(s)
}
