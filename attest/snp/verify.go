package snp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/go-sev-guest/abi"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/fetch"
)

// Revocation says how the verifier treats AMD's certificate revocation lists.
type Revocation int

const (
	// RevocationRequired (the zero value): a current CRL signed by the product's ARK must be found
	// (collateral directory, cache or KDS; never the evidence, since the attester could pick an
	// old CRL or the other chain's) and must not list the ASK/ASVK;
	// when none can be found the verification fails with attest.ErrUnavailable.
	RevocationRequired Revocation = iota
	// RevocationIfAvailable checks a CRL when one can be found and proceeds without one otherwise
	// (a chain verified without a CRL is re-checked at most an hour later). For offline tooling.
	RevocationIfAvailable
	// InsecureRevocationSkip never checks revocation. Tests only.
	InsecureRevocationSkip
)

// uncheckedRecheck bounds how long a chain verified without a CRL is trusted before the next
// verification looks for a CRL again.
const uncheckedRecheck = time.Hour

// maxCachedChains bounds the verified-chain cache; when full it is emptied.
const maxCachedChains = 4096

// Options configure a Verifier. The zero value uses the certificates carried in the evidence,
// AMD's embedded roots for Milan, Genoa and Turin (VCEK and VLEK), requires a CRL, and never
// touches the network or the disk; with no CRL source configured, set Getter (online), CertsDir
// (offline) or Revocation.
type Options struct {
	// Roots maps product lines ("Milan", "Genoa", "Turin") to trust anchors; nil means AMDRoots().
	// Tests inject roots made by go-sev-guest's testing package.
	Roots map[string]*Roots
	// Getter fetches from AMD's KDS (VCEKs missing from the evidence, CRLs); nil means no network.
	Getter Getter
	// KDSURL is the KDS base URL; "" means DefaultKDSURL.
	KDSURL string
	// CacheDir, if set, keeps downloaded VCEKs and CRLs on disk (see the layout above
	// vcekCachePath). Everything read from it is verified again.
	CacheDir string
	// CertsDir, if set, is an offline collateral directory: it is read like the cache and the
	// network is never used, whatever Getter says.
	CertsDir string
	// Revocation says how CRLs are used; the zero value requires one.
	Revocation Revocation
	// CacheObserver, if set, learns whether each endorsement (VCEK/VLEK chain with its CRL
	// checks) came from the verified-chain cache (for metrics). It must not block.
	CacheObserver func(hit bool)
	// KDSRate bounds outbound KDS requests of this verifier, across all verifications, in
	// requests per second; 0 means DefaultKDSRate. A VCEK is fetched before the report's
	// signature can be checked, so whoever can call Attest could otherwise make trustd ask the
	// KDS once per forged report. Past the budget a verification that needs the KDS fails at
	// once with attest.ErrUnavailable.
	KDSRate float64
	// KDSBurst is how many requests may go out at once before KDSRate applies; 0 means
	// DefaultKDSBurst.
	KDSBurst int
	// KDSNegativeTTL is how long a failed KDS request (per URL: one chip and TCB, or one CRL) is
	// remembered and answered without asking again; 0 means DefaultKDSNegativeTTL. A KDS that
	// knows no such chip is remembered ten times as long.
	KDSNegativeTTL time.Duration
	// Freshness says how often CRLs are fetched again whatever their nextUpdate, and how long a
	// failed refresh keeps the last good one (see freshness.go); zero fields take the defaults.
	Freshness Freshness
	// HighWater, if set, is shared with other replicas: a CRL older than the newest any of them
	// accepted is refused (attest/highwater: in memory, or PostgreSQL).
	HighWater HighWater
	// Store, if set, is shared with other replicas (attest/collstore): CRLs are kept there in
	// place of the disk cache, so that one replica fetches each per refresh interval, and VCEKs
	// fetched from the KDS are kept there besides the disk cache. Everything read from it is
	// verified again.
	Store attest.CollateralStore
}

// Defaults of the outbound KDS budget. AMD's KDS throttles at a few requests per second per
// client; a fleet needs one VCEK per chip and TCB, then serves it from the caches.
const (
	DefaultKDSRate        = 0.5
	DefaultKDSBurst       = 10
	DefaultKDSNegativeTTL = time.Minute
)

// maxNegative bounds the negative cache; when full it is emptied (the rate limit still holds).
const maxNegative = 4096

// Verifier verifies SEV-SNP evidence. It is safe for concurrent use.
type Verifier struct {
	o     Options
	roots map[string]*Roots

	mu     sync.Mutex
	chains map[[32]byte]*endorsement // by SHA-256 of the VCEK/VLEK DER
	crls   map[string]*crlEntry      // by product/signer
	// vceks remembers VCEKs fetched from the KDS by their cache path, so a warm verification of a
	// report that carries no certificates does not go back to the network.
	vceks map[string][]byte
	// kds shares one KDS request among concurrent verifications that need the same URL (AMD
	// throttles repeated requests), remembers failed requests by URL until their expiry (wall
	// clock), so that repeated reports for the same unknown chip and TCB cost one request per
	// KDSNegativeTTL, and holds the global budget of outbound KDS requests.
	kds *fetch.Guard[[]byte]
	// store keeps fetched CRLs: Options.Store, or the disk cache in CacheDir.
	store attest.CollateralStore
	// wall is the clock of the negative cache (not the verification time, which may be past).
	wall func() time.Time
}

// errKDSBudget: the outbound request budget is spent; the verification is Unavailable.
var errKDSBudget = errors.New("AMD KDS request budget exhausted (too many verifications needing new certificates); try again later")

// fetch gets url through the Getter, joining a request already in flight for the same URL.
// cached and keep run under the guard's lock: cached returns what an earlier fetch left in
// memory (nil if nothing), keep stores a successful body, so no caller falls between a finished
// fetch and its result being remembered. They take v.mu themselves.
func (v *Verifier) fetch(ctx context.Context, url string, cached func() []byte, keep func([]byte)) ([]byte, error) {
	return v.kds.Do(ctx, url,
		func() ([]byte, bool) {
			v.mu.Lock()
			defer v.mu.Unlock()
			b := cached()
			return b, b != nil
		},
		func(b []byte) {
			v.mu.Lock()
			defer v.mu.Unlock()
			keep(b)
		},
		func(ctx context.Context) ([]byte, error) { return v.o.Getter.Get(ctx, url) })
}

// endorsement is a verified VCEK or VLEK and the window in which that verification holds.
type endorsement struct {
	key       *ecdsa.PublicKey
	signer    abi.ReportSigner
	product   string
	ext       *certExtensions
	notBefore time.Time
	notAfter  time.Time
	// crlChecked is false only when the chain was accepted without a CRL (RevocationIfAvailable,
	// InsecureRevocationSkip).
	crlChecked bool
	// crl is the CRL the chain was checked against; a cached chain is re-checked when the
	// verifier's current CRL is another (refreshed) one.
	crl *x509.RevocationList
}

// New returns a Verifier.
func New(o Options) (*Verifier, error) {
	roots := o.Roots
	if roots == nil {
		var err error
		if roots, err = AMDRoots(); err != nil {
			return nil, err
		}
	}
	for p, r := range roots {
		if r == nil || r.Product != p {
			return nil, fmt.Errorf("snp: roots for %q are missing or name another product", p)
		}
		if err := r.check(); err != nil {
			return nil, fmt.Errorf("snp: %v", err)
		}
	}
	if o.KDSURL == "" {
		o.KDSURL = DefaultKDSURL
	}
	if o.Revocation < RevocationRequired || o.Revocation > InsecureRevocationSkip {
		return nil, fmt.Errorf("snp: unknown Revocation %d", o.Revocation)
	}
	if o.KDSRate < 0 || o.KDSBurst < 0 || o.KDSNegativeTTL < 0 {
		return nil, errors.New("snp: KDSRate, KDSBurst and KDSNegativeTTL must not be negative")
	}
	if o.KDSRate == 0 {
		o.KDSRate = DefaultKDSRate
	}
	if o.KDSBurst == 0 {
		o.KDSBurst = DefaultKDSBurst
	}
	if o.KDSNegativeTTL == 0 {
		o.KDSNegativeTTL = DefaultKDSNegativeTTL
	}
	if o.Freshness.RefreshInterval < 0 || o.Freshness.MaxAge < 0 {
		return nil, errors.New("snp: Freshness intervals must not be negative")
	}
	o.Freshness = o.Freshness.withDefaults()
	v := &Verifier{o: o, roots: roots, chains: map[[32]byte]*endorsement{}, crls: map[string]*crlEntry{},
		vceks: map[string][]byte{}, wall: time.Now, store: o.Store}
	if v.store == nil && o.CacheDir != "" {
		v.store = DiskStore{Dir: o.CacheDir}
	}
	v.kds = &fetch.Guard[[]byte]{Rate: o.KDSRate, Burst: o.KDSBurst, NegativeTTL: o.KDSNegativeTTL,
		MaxNegative: maxNegative, ErrBudget: errKDSBudget, Now: func() time.Time { return v.wall() }}
	return v, nil
}

// TEE implements attest.Verifier.
func (v *Verifier) TEE() attest.TEE { return attest.SEVSNP }

// Verify implements attest.Verifier. ev.Report is the 1184-byte report; ev.Certificates the
// extended report's certificate table, if any; ev.Collateral may carry vcek.der|pem or
// vlek.der|pem when the table lacks them.
func (v *Verifier) Verify(ctx context.Context, ev *attest.Evidence, opts attest.Options) (*attest.Claims, error) {
	if ev == nil {
		return nil, attest.Malformed("evidence", "missing")
	}
	if ev.TEE != attest.SEVSNP {
		return nil, attest.Malformed("tee", "%q, want %q", ev.TEE, attest.SEVSNP)
	}
	now := opts.Time()
	r, err := parseReport(ev.Report)
	if err != nil {
		return nil, err
	}
	var table certTable
	if len(ev.Certificates) > 0 {
		if table, err = parseCertTable(ev.Certificates); err != nil {
			return nil, err
		}
	}
	var field, signer string
	switch r.signer {
	case abi.VcekReportSigner:
		field, signer = "certificates.vcek", SignerVCEK
	case abi.VlekReportSigner:
		field, signer = "certificates.vlek", SignerVLEK
	default:
		return nil, attest.NotAuthentic("report.signer_info", fmt.Errorf("report is not signed (signing key %v)", r.signer))
	}
	der, err := v.endorsementCert(ctx, r, table, ev.Collateral, field)
	if err != nil {
		return nil, err
	}
	e, err := v.endorsed(ctx, r, der, table, field, signer, now)
	if err != nil {
		return nil, err
	}
	if err := bindReport(r, e, field); err != nil {
		return nil, err
	}
	if !r.signatureValid(e.key) {
		return nil, attest.NotAuthentic("report.signature", fmt.Errorf("does not verify under the %s of this chip and TCB", signer))
	}
	return claims(r, e, signer), nil
}

// bindReport checks that the endorsement certificate was issued for this report: same product,
// same chip, same reported TCB.
func bindReport(r *report, e *endorsement, field string) error {
	if r.product != "" && r.product != e.product {
		return attest.NotAuthentic("platform.product", fmt.Errorf("report is from %s, certificate chain is %s", r.product, e.product))
	}
	if e.signer == abi.VcekReportSigner {
		chip := r.pb.ChipId
		hw := e.ext.hwid
		switch {
		case r.masked && allZero(chip):
			// The host masked CHIP_ID; the chip is the one holding the VCEK's key.
		case !bytes.Equal(chip[:len(hw)], hw) || !allZero(chip[len(hw):]):
			return attest.NotAuthentic("platform.chip_id", fmt.Errorf("report CHIP_ID does not match the %s hwID", field))
		}
	}
	want := DecodeTCB(r.pb.ReportedTcb, e.product)
	if want.HasFMC != e.ext.tcb.HasFMC {
		return attest.NotAuthentic("tcb.fmc", fmt.Errorf("%s product %s: certificate fmcSPL present=%v", field, e.product, e.ext.tcb.HasFMC))
	}
	got := e.ext.tcb.components()
	for i, c := range want.components() {
		if c.value != got[i].value {
			return attest.NotAuthentic("tcb."+c.name, fmt.Errorf("report's REPORTED_TCB has %d, the %s was issued for %d", c.value, field, got[i].value))
		}
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// endorsementCert finds the VCEK or VLEK: certificate table, evidence collateral, collateral
// directory, cache, then (VCEK only) the KDS.
func (v *Verifier) endorsementCert(ctx context.Context, r *report, table certTable, coll map[string][]byte, field string) ([]byte, error) {
	guid, flat := guidVCEK, "vcek"
	if r.signer == abi.VlekReportSigner {
		guid, flat = guidVLEK, "vlek"
	}
	if c := table[guid]; len(c) > 0 {
		return c, nil
	}
	for _, n := range []string{flat + ".der", flat + ".pem"} {
		if c := coll[n]; len(c) > 0 {
			return c, nil
		}
	}
	for _, n := range []string{flat + ".der", flat + ".pem"} {
		c, err := readDirFile(v.o.CertsDir, n)
		if err != nil {
			return nil, attest.Unavailable(field, err)
		}
		if c != nil {
			return c, nil
		}
	}
	if r.signer == abi.VlekReportSigner {
		return nil, attest.Unavailable(field, errors.New("VLEK certificate not in the evidence or the collateral directory (the KDS serves VLEKs only to their cloud provider)"))
	}
	if r.masked && allZero(r.pb.ChipId) {
		return nil, attest.Unavailable(field, errors.New("CHIP_ID is masked and the evidence carries no VCEK"))
	}
	products := []string{r.product}
	if r.product == "" {
		products = []string{Milan, Genoa} // version 2 reports predate Turin
	}
	var lastErr error
	for _, p := range products {
		rel := vcekCachePath(p, r.pb.ChipId, r.pb.ReportedTcb)
		v.mu.Lock()
		c := v.vceks[rel]
		v.mu.Unlock()
		if c != nil {
			return c, nil
		}
		for _, dir := range []string{v.o.CertsDir, v.o.CacheDir} {
			c, err := readDirFile(dir, rel)
			if err != nil {
				return nil, attest.Unavailable(field, err)
			}
			if c != nil {
				return c, nil
			}
		}
		if v.o.CertsDir != "" || v.o.Getter == nil {
			continue
		}
		if v.o.Store != nil {
			// Another replica's fetch; its bytes are verified like the evidence's.
			if files, _, err := v.o.Store.Load(ctx, vcekStoreKey(rel)); err == nil && files[storeVCEKFile] != nil {
				c := files[storeVCEKFile]
				_ = writeCacheFile(v.o.CacheDir, rel, c)
				return c, nil
			}
		}
		c, err := v.fetch(ctx, vcekURL(v.o.KDSURL, p, r.pb.ChipId, DecodeTCB(r.pb.ReportedTcb, p)),
			func() []byte { return v.vceks[rel] },
			func(b []byte) {
				if len(v.vceks) >= maxCachedChains {
					clear(v.vceks)
				}
				v.vceks[rel] = b // verified before use like any other copy
			})
		if err != nil {
			lastErr = err
			continue
		}
		_ = writeCacheFile(v.o.CacheDir, rel, c)
		if v.o.Store != nil {
			_ = v.o.Store.Store(ctx, vcekStoreKey(rel), map[string][]byte{storeVCEKFile: c}, v.wall())
		}
		return c, nil
	}
	switch {
	case lastErr == nil:
		return nil, attest.Unavailable(field, errors.New("VCEK not in the evidence, the collateral directory or the cache, and no KDS access configured"))
	case isNotFound(lastErr):
		return nil, attest.NotAuthentic(field, fmt.Errorf("AMD KDS knows no VCEK for this CHIP_ID and TCB: %v", lastErr))
	default:
		return nil, attest.Unavailable(field, lastErr)
	}
}

// endorsed returns the verified endorsement for der, from the cache when its window covers now.
func (v *Verifier) endorsed(ctx context.Context, r *report, der []byte, table certTable, field, signer string, now time.Time) (*endorsement, error) {
	if blk, _ := pem.Decode(der); blk != nil {
		der = blk.Bytes
	}
	fp := sha256.Sum256(der)
	v.mu.Lock()
	e := v.chains[fp]
	v.mu.Unlock()
	hit := e != nil && e.signer == r.signer && !now.Before(e.notBefore) && now.Before(e.notAfter)
	if hit && e.crl != nil {
		// The chain was checked against a CRL: it holds only while that CRL is still the current
		// one, so that a refreshed CRL revoking the ASK/ASVK takes effect at once.
		roots := v.roots[e.product]
		cur, err := v.crl(ctx, roots, signerName(e.signer), now)
		if err != nil {
			return nil, err
		}
		hit = cur == e.crl
	}
	if v.o.CacheObserver != nil {
		v.o.CacheObserver(hit)
	}
	if hit {
		return e, nil
	}
	e, err := v.verifyChain(ctx, r, der, table, field, signer, now)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	if len(v.chains) >= maxCachedChains {
		clear(v.chains)
	}
	v.chains[fp] = e
	v.mu.Unlock()
	return e, nil
}

// verifyChain does the cold work: parse the VCEK/VLEK, verify it up to the product's ARK, check
// the CRL.
func (v *Verifier) verifyChain(ctx context.Context, r *report, der []byte, table certTable, field, signer string, now time.Time) (*endorsement, error) {
	cert, ext, err := parseEndorsement(field, der, r.signer)
	if err != nil {
		return nil, err
	}
	product := r.product
	if product == "" {
		product = productOfCert(cert, ext)
	}
	roots := v.roots[product]
	if roots == nil {
		return nil, attest.NotAuthentic("certificates.ark", fmt.Errorf("no trusted AMD root for product %q", product))
	}
	ica, icaField := roots.ASK, "certificates.ask"
	if r.signer == abi.VlekReportSigner {
		ica, icaField = roots.ASVK, "certificates.asvk"
	}
	if ica == nil {
		return nil, attest.NotAuthentic(icaField, fmt.Errorf("no trusted %s intermediate for %s", signer, product))
	}
	pool := x509.NewCertPool()
	pool.AddCert(roots.ARK)
	inter := x509.NewCertPool()
	inter.AddCert(ica)
	if r.signer == abi.VcekReportSigner {
		// An ASK the host supplied may be newer than ours; it must still chain to the ARK.
		if c := table[guidASK]; len(c) > 0 {
			if askCert, err := x509.ParseCertificate(c); err == nil {
				inter.AddCert(askCert)
			}
		}
	}
	chains, err := cert.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return nil, attest.NotAuthentic(field, fmt.Errorf("certificate chain not valid at %s: %v", now.UTC().Format(time.RFC3339), err))
		}
		return nil, attest.NotAuthentic(field, fmt.Errorf("does not chain to AMD's %s root (ARK-%s): %v", product, product, err))
	}
	chain := chains[0]
	for _, c := range chains {
		if len(c) == 3 && c[1].Equal(ica) {
			chain = c // prefer our own intermediate over one the host supplied
			break
		}
	}
	if len(chain) != 3 {
		return nil, attest.NotAuthentic(field, fmt.Errorf("chain has %d certificates, want VCEK/VLEK, intermediate, ARK", len(chain)))
	}
	e := &endorsement{key: cert.PublicKey.(*ecdsa.PublicKey), signer: r.signer, product: product, ext: ext}
	e.notBefore, e.notAfter = chain[0].NotBefore, chain[0].NotAfter
	for _, c := range chain[1:] {
		if c.NotBefore.After(e.notBefore) {
			e.notBefore = c.NotBefore
		}
		if c.NotAfter.Before(e.notAfter) {
			e.notAfter = c.NotAfter
		}
	}
	if v.o.Revocation == InsecureRevocationSkip {
		return e, nil
	}
	crl, err := v.crl(ctx, roots, signer, now)
	if err != nil {
		return nil, err
	}
	if crl == nil { // RevocationIfAvailable without a CRL
		if limit := now.Add(uncheckedRecheck); limit.Before(e.notAfter) {
			e.notAfter = limit
		}
		return e, nil
	}
	e.crlChecked, e.crl = true, crl
	for _, rc := range crl.RevokedCertificateEntries {
		if rc.SerialNumber != nil && rc.SerialNumber.Cmp(chain[1].SerialNumber) == 0 {
			return nil, attest.NotAuthentic(icaField, fmt.Errorf("revoked by AMD on %s (serial %x)", rc.RevocationTime.UTC().Format(time.DateOnly), chain[1].SerialNumber))
		}
	}
	if crl.ThisUpdate.After(e.notBefore) {
		e.notBefore = crl.ThisUpdate
	}
	if !crl.NextUpdate.IsZero() && crl.NextUpdate.Before(e.notAfter) {
		e.notAfter = crl.NextUpdate
	}
	return e, nil
}

func crlCurrent(c *x509.RevocationList, now time.Time) bool {
	return !now.Before(c.ThisUpdate) && (c.NextUpdate.IsZero() || now.Before(c.NextUpdate))
}

// parseCRL parses a DER or PEM CRL and checks that ark signed it and that it is current.
func parseCRL(b []byte, ark *x509.Certificate, now time.Time) (*x509.RevocationList, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	c, err := x509.ParseRevocationList(b)
	if err != nil {
		return nil, fmt.Errorf("CRL does not parse: %v", err)
	}
	if !bytes.Equal(c.RawIssuer, ark.RawSubject) {
		return nil, fmt.Errorf("CRL issued by %q, not %s", c.Issuer.CommonName, ark.Subject.CommonName)
	}
	if err := c.CheckSignatureFrom(ark); err != nil {
		return nil, fmt.Errorf("CRL not signed by %s: %v", ark.Subject.CommonName, err)
	}
	if !crlCurrent(c, now) {
		return nil, fmt.Errorf("CRL not current at %s (this update %s, next update %s)", now.UTC().Format(time.RFC3339), c.ThisUpdate.UTC().Format(time.RFC3339), c.NextUpdate.UTC().Format(time.RFC3339))
	}
	return c, nil
}

// claims maps a verified report onto attest.Claims.
func claims(r *report, e *endorsement, signer string) *attest.Claims {
	p := r.pb
	c := &attest.Claims{
		TEE:         attest.SEVSNP,
		Measurement: attest.Hex(p.Measurement),
		Config: map[string]attest.Hex{
			ClaimHostData:        p.HostData,
			ClaimIDKeyDigest:     p.IdKeyDigest,
			ClaimAuthorKeyDigest: p.AuthorKeyDigest,
			ClaimFamilyID:        p.FamilyId,
			ClaimImageID:         p.ImageId,
		},
		TCB:       map[string]uint64{ClaimGuestSVN: uint64(p.GuestSvn)},
		Debug:     p.Policy&policyDebug != 0,
		Migration: p.Policy&policyMigrateMA != 0,
		// Two different facts: whether the guest owner allows SMT (guest policy bit 16), and
		// whether the platform has it on (PLATFORM_INFO bit 0, SMT_EN).
		PolicySMTAllowed:   new(p.Policy&policySMT != 0),
		PlatformSMTEnabled: attest.TristateOf(new(p.PlatformInfo&platformInfoSMTEn != 0)),
		ReportData:         attest.Hex(p.ReportData),
		Platform: map[string]string{
			"product": e.product,
			"signer":  signer,
		},
		Attributes: map[string]uint64{
			ClaimVMPL:         uint64(p.Vmpl),
			ClaimGuestPolicy:  p.Policy,
			ClaimPlatformInfo: p.PlatformInfo,
			"version":         uint64(p.Version),
			"current_build":   uint64(p.CurrentBuild),
			"current_minor":   uint64(p.CurrentMinor),
			"current_major":   uint64(p.CurrentMajor),
		},
	}
	for prefix, v := range map[string]uint64{"": p.ReportedTcb, "committed.": p.CommittedTcb, "launch.": p.LaunchTcb, "current.": p.CurrentTcb} {
		for _, part := range DecodeTCB(v, e.product).components() {
			c.TCB[prefix+part.name] = uint64(part.value)
		}
	}
	switch {
	case e.signer == abi.VcekReportSigner && r.masked && allZero(p.ChipId):
		// The CHIP_ID the chip would have reported: a Turin hwID is its first 8 bytes, the rest
		// zero. The host decides about masking, so one chip must read the same either way (a
		// chip_id revocation must hold).
		var chip [abi.ChipIDSize]byte
		copy(chip[:], e.ext.hwid)
		c.Platform[ClaimChipID] = hex.EncodeToString(chip[:])
		c.Attributes["chip_id_masked"] = 1
	default:
		c.Platform[ClaimChipID] = hex.EncodeToString(p.ChipId)
	}
	if e.ext.cspID != "" {
		c.Platform["csp_id"] = e.ext.cspID
	}
	if e.crlChecked {
		c.Attributes[ClaimCRLChecked] = 1
	} else {
		c.Attributes[ClaimCRLChecked] = 0
	}
	if p.Version >= abi.ReportVersion5 {
		c.Attributes["launch_mit_vector"] = p.LaunchMitVector
		c.Attributes["current_mit_vector"] = p.CurrentMitVector
	}
	if p.Cpuid1EaxFms != 0 {
		c.Platform["cpuid_fms"] = strconv.FormatUint(uint64(p.Cpuid1EaxFms), 16)
	}
	return c
}
