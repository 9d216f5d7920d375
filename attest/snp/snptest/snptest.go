// Package snptest makes SEV-SNP evidence under a fake AMD hierarchy (go-sev-guest's testing
// package), for tests of code that verifies or handles SNP reports: a VCEK and a VLEK per product
// line (Milan, Genoa, Turin), signed reports with chosen fields, the certificate table a host
// returns and ARK-signed CRLs. It does not import attest/snp, so that package's own tests use
// it too; build the verifier's trust anchors from Fixture.Signer (Ark, Ask, Asvk).
//
// Never use it outside tests: the keys are go-sev-guest's published test keys.
package snptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	sevtest "github.com/google/go-sev-guest/testing"
	"github.com/google/uuid"
)

// Product lines, as attest/snp names them.
const (
	Milan = "Milan"
	Genoa = "Genoa"
	Turin = "Turin"
)

// T0 is when the fake AMD chains are issued; TVerify is a time at which they are valid.
var (
	T0      = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	TVerify = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
)

// AMD's VCEK/VLEK extension arc, 1.3.6.1.4.1.3704.1 (AMD KDS specification).
var (
	OIDStructVersion = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 1}
	OIDProductName   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 2}
	OIDBlSPL         = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 1}
	OIDTeeSPL        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 2}
	OIDSnpSPL        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 3}
	OIDUcodeSPL      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 8}
	OIDFmcSPL        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 9}
	OIDHWID          = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 4}
	OIDCSPID         = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 5}
)

// TurinHWIDSize is the length of the hwID of Turin VCEKs; Milan and Genoa use 64 bytes.
const TurinHWIDSize = 8

const signedLen = 0x2A0 // the signature covers bytes [0, 0x2A0)

// TCB is a TCB_VERSION's components (attest/snp.TCB has the same fields).
type TCB struct {
	FMC, Bootloader, TEE, SNP, Microcode uint8
	HasFMC                               bool
}

// Fixture is a fake AMD hierarchy for one product, made with go-sev-guest's testing package,
// with a VCEK for hwid at tcb and a VLEK at the same tcb.
type Fixture struct {
	Product string
	Signer  *sevtest.AmdSigner
	HWID    [64]byte
	TCB     TCB
}

func productName(product string) string {
	switch product {
	case Milan:
		return "Milan-B1"
	case Genoa:
		return "Genoa-B1"
	}
	return "Turin-B0"
}

// KDSExtensions builds the AMD extensions of a VCEK (hwid) or VLEK (nil hwid, cspID) as the KDS
// writes them (hwID as raw bytes).
func KDSExtensions(t testing.TB, product string, tcb TCB, hwid []byte, cspID string) []pkix.Extension {
	t.Helper()
	i := func(v uint8) []byte {
		b, err := asn1.Marshal(int(v))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ia5 := func(s string) []byte {
		b, err := asn1.MarshalWithParams(s, "ia5")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	name := productName(product)
	if hwid == nil {
		name = product
	}
	exts := []pkix.Extension{
		{Id: OIDStructVersion, Value: i(1)},
		{Id: OIDProductName, Value: ia5(name)},
		{Id: OIDBlSPL, Value: i(tcb.Bootloader)},
		{Id: OIDTeeSPL, Value: i(tcb.TEE)},
		{Id: OIDSnpSPL, Value: i(tcb.SNP)},
		{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 4}, Value: i(0)},
		{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 5}, Value: i(0)},
		{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 6}, Value: i(0)},
		{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 7}, Value: i(0)},
		{Id: OIDUcodeSPL, Value: i(tcb.Microcode)},
	}
	if product == Turin {
		exts = append(exts, pkix.Extension{Id: OIDFmcSPL, Value: i(tcb.FMC)})
	}
	if hwid != nil {
		exts = append(exts, pkix.Extension{Id: OIDHWID, Value: hwid})
	} else {
		exts = append(exts, pkix.Extension{Id: OIDCSPID, Value: ia5(cspID)})
	}
	return exts
}

// DefaultTCB is the TCB of a fixture's chips.
func DefaultTCB(product string) TCB {
	if product == Turin {
		return TCB{FMC: 1, Bootloader: 4, TEE: 1, SNP: 22, Microcode: 72, HasFMC: true}
	}
	return TCB{Bootloader: 3, TEE: 0, SNP: 8, Microcode: 115}
}

// HWIDOf is a made-up hwID (chip ID) derived from seed.
func HWIDOf(product string, seed byte) [64]byte {
	var h [64]byte
	n := 64
	if product == Turin {
		n = TurinHWIDSize
	}
	for i := 0; i < n; i++ {
		h[i] = seed + byte(i)
	}
	return h
}

// Options change a fixture's VCEK: its key and when it was issued.
type Options struct {
	VCEKKey   *ecdsa.PrivateKey
	VCEKSince time.Time
}

// New makes the fake hierarchy of product (Milan, Genoa or Turin).
func New(t testing.TB, product string, o Options) *Fixture {
	t.Helper()
	f := &Fixture{Product: product, HWID: HWIDOf(product, 0x40), TCB: DefaultTCB(product)}
	keys := sevtest.DefaultAmdKeys()
	if o.VCEKKey != nil {
		keys.Vcek = o.VCEKKey
	}
	since := T0
	if !o.VCEKSince.IsZero() {
		since = o.VCEKSince
	}
	hw := f.HWID[:]
	if product == Turin {
		hw = f.HWID[:TurinHWIDSize]
	}
	b := &sevtest.AmdSignerBuilder{
		Keys:             keys,
		ProductName:      productName(product),
		CSPID:            "medicus-test-csp",
		ArkCreationTime:  T0,
		AskCreationTime:  T0,
		AsvkCreationTime: T0,
		VcekCreationTime: since,
		VlekCreationTime: T0,
		HWID:             f.HWID,
		VcekCustom:       sevtest.CertOverride{Extensions: KDSExtensions(t, product, f.TCB, hw, "")},
		VlekCustom:       sevtest.CertOverride{Extensions: KDSExtensions(t, product, f.TCB, nil, "medicus-test-csp")},
	}
	s, err := b.TestOnlyCertChain()
	if err != nil {
		t.Fatal(err)
	}
	f.Signer = s
	return f
}

// EncodeTCB encodes t as the TCB_VERSION of product (attest/snp.DecodeTCB's inverse).
func EncodeTCB(product string, t TCB) uint64 {
	b := make([]byte, 8)
	if product == Turin {
		b[0], b[1], b[2], b[3], b[7] = t.FMC, t.Bootloader, t.TEE, t.SNP, t.Microcode
	} else {
		b[0], b[1], b[6], b[7] = t.Bootloader, t.TEE, t.SNP, t.Microcode
	}
	return binary.LittleEndian.Uint64(b)
}

// ReportSpec describes a report to build; zero fields take fixture defaults.
type ReportSpec struct {
	Version    uint32           // 0 means 3
	Signer     abi.ReportSigner // VCEK (the zero value), VLEK, or None for an unsigned report
	Policy     uint64           // 0 means 0x30000
	VMPL       uint32
	ReportData [64]byte
	ChipID     *[64]byte // nil: the fixture's hwID
	TCB        *TCB      // nil: the fixture's TCB
	FMS        *[3]byte  // nil: the fixture product's family, model, stepping (version >= 3)
	Mask       bool      // MASK_CHIP_KEY
}

var fmsOf = map[string][3]byte{Milan: {0x19, 0x01, 0x01}, Genoa: {0x19, 0x11, 0x01}, Turin: {0x1A, 0x02, 0x00}}

// Report builds and signs a raw report with the fixture's VCEK or VLEK.
func (f *Fixture) Report(t testing.TB, s ReportSpec) []byte {
	t.Helper()
	if s.Version == 0 {
		s.Version = 3
	}
	if s.Policy == 0 {
		s.Policy = 0x30000
	}
	tcb := f.TCB
	if s.TCB != nil {
		tcb = *s.TCB
	}
	chip := f.HWID
	if s.ChipID != nil {
		chip = *s.ChipID
	}
	raw := make([]byte, abi.ReportSize)
	le := binary.LittleEndian
	le.PutUint32(raw[0x00:], s.Version)
	le.PutUint32(raw[0x04:], 7) // guest SVN
	le.PutUint64(raw[0x08:], s.Policy)
	copy(raw[0x10:0x20], "family-id-xxxxxx")
	copy(raw[0x20:0x30], "image-id-yyyyyyy")
	le.PutUint32(raw[0x30:], s.VMPL)
	le.PutUint32(raw[0x34:], abi.SignEcdsaP384Sha384)
	enc := EncodeTCB(f.Product, tcb)
	le.PutUint64(raw[0x38:], enc) // current
	le.PutUint64(raw[0x40:], 1)   // platform info: SMT enabled
	info := abi.SignerInfo{SigningKey: s.Signer, MaskChipKey: s.Mask}
	le.PutUint32(raw[0x48:], abi.ComposeSignerInfo(info))
	copy(raw[0x50:0x90], s.ReportData[:])
	for i := 0x90; i < 0xC0; i++ {
		raw[i] = byte(i) // measurement
	}
	copy(raw[0xC0:0xE0], "host-data-0123456789abcdefghijkl")
	le.PutUint64(raw[0x180:], enc) // reported
	if s.Version >= 3 {
		fms := fmsOf[f.Product]
		if s.FMS != nil {
			fms = *s.FMS
		}
		raw[0x188], raw[0x189], raw[0x18A] = fms[0], fms[1], fms[2]
	}
	if !s.Mask {
		copy(raw[0x1A0:0x1E0], chip[:])
	}
	le.PutUint64(raw[0x1E0:], enc) // committed
	raw[0x1E8], raw[0x1E9], raw[0x1EA] = 9, 55, 1
	raw[0x1EC], raw[0x1ED], raw[0x1EE] = 9, 55, 1
	le.PutUint64(raw[0x1F0:], enc) // launch
	if s.Signer != abi.NoneReportSigner {
		f.Sign(t, raw)
	}
	return raw
}

// Sign signs raw in place with the fixture's VCEK.
func (f *Fixture) Sign(t testing.TB, raw []byte) {
	t.Helper()
	r, s, err := f.Signer.Sign(raw[:signedLen])
	if err != nil {
		t.Fatal(err)
	}
	if err := abi.SetSignature(r, s, raw); err != nil {
		t.Fatal(err)
	}
}

// Table is the fixture's certificate table: ARK, ASK, VCEK, VLEK (and the library's zero-GUID
// ASVK entry).
func (f *Fixture) Table(t testing.TB) []byte {
	t.Helper()
	b, err := f.Signer.CertTableBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// VCEKOnlyTable is a table holding just the VCEK.
func VCEKOnlyTable(der []byte) []byte {
	ct := abi.CertTable{Entries: []abi.CertTableEntry{{GUID: uuid.MustParse(abi.VcekGUID), RawCert: der}}}
	return ct.Marshal()
}

// CRL makes an ARK-signed CRL valid [from, from+life) revoking serials.
func (f *Fixture) CRL(t testing.TB, from time.Time, life time.Duration, serials ...*big.Int) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{
		Number:             big.NewInt(1),
		ThisUpdate:         from,
		NextUpdate:         from.Add(life),
		SignatureAlgorithm: x509.SHA384WithRSAPSS,
	}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: from})
	}
	b, err := x509.CreateRevocationList(rand.Reader, tmpl, f.Signer.Ark, f.Signer.Keys.Ark)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// NewP384 makes an ECDSA P-384 key.
func NewP384(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// PEMCert encodes a DER certificate as PEM.
func PEMCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
