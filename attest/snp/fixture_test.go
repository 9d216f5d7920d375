package snp

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

// t0 is when the fake AMD chains are issued; tests verify at tVerify.
var (
	t0      = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tVerify = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
)

// fixture is a fake AMD hierarchy for one product, made with go-sev-guest's testing package,
// with a VCEK for hwid at tcb and a VLEK at the same tcb.
type fixture struct {
	product string
	signer  *sevtest.AmdSigner
	hwid    [64]byte
	tcb     TCB
	roots   map[string]*Roots
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

// kdsExtensions builds the AMD extensions as the KDS writes them (hwID as raw bytes).
func kdsExtensions(t testing.TB, product string, tcb TCB, hwid []byte, cspID string) []pkix.Extension {
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
		{Id: oidStructVersion, Value: i(1)},
		{Id: oidProductName, Value: ia5(name)},
		{Id: oidBlSPL, Value: i(tcb.Bootloader)},
		{Id: oidTeeSPL, Value: i(tcb.TEE)},
		{Id: oidSnpSPL, Value: i(tcb.SNP)},
		{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 4}, Value: i(0)},
		{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 5}, Value: i(0)},
		{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 6}, Value: i(0)},
		{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 7}, Value: i(0)},
		{Id: oidUcodeSPL, Value: i(tcb.Microcode)},
	}
	if product == Turin {
		exts = append(exts, pkix.Extension{Id: oidFmcSPL, Value: i(tcb.FMC)})
	}
	if hwid != nil {
		exts = append(exts, pkix.Extension{Id: oidHWID, Value: hwid})
	} else {
		exts = append(exts, pkix.Extension{Id: oidCSPID, Value: ia5(cspID)})
	}
	return exts
}

func defaultTCB(product string) TCB {
	if product == Turin {
		return TCB{FMC: 1, Bootloader: 4, TEE: 1, SNP: 22, Microcode: 72, HasFMC: true}
	}
	return TCB{Bootloader: 3, TEE: 0, SNP: 8, Microcode: 115}
}

func hwidOf(product string, seed byte) [64]byte {
	var h [64]byte
	n := 64
	if product == Turin {
		n = turinHWIDSize
	}
	for i := 0; i < n; i++ {
		h[i] = seed + byte(i)
	}
	return h
}

type fixtureOpts struct {
	vcekKey   *ecdsa.PrivateKey
	vcekSince time.Time
}

func newFixture(t testing.TB, product string, o fixtureOpts) *fixture {
	t.Helper()
	f := &fixture{product: product, hwid: hwidOf(product, 0x40), tcb: defaultTCB(product)}
	keys := sevtest.DefaultAmdKeys()
	if o.vcekKey != nil {
		keys.Vcek = o.vcekKey
	}
	since := t0
	if !o.vcekSince.IsZero() {
		since = o.vcekSince
	}
	hw := f.hwid[:]
	if product == Turin {
		hw = f.hwid[:turinHWIDSize]
	}
	b := &sevtest.AmdSignerBuilder{
		Keys:             keys,
		ProductName:      productName(product),
		CSPID:            "medicus-test-csp",
		ArkCreationTime:  t0,
		AskCreationTime:  t0,
		AsvkCreationTime: t0,
		VcekCreationTime: since,
		VlekCreationTime: t0,
		HWID:             f.hwid,
		VcekCustom:       sevtest.CertOverride{Extensions: kdsExtensions(t, product, f.tcb, hw, "")},
		VlekCustom:       sevtest.CertOverride{Extensions: kdsExtensions(t, product, f.tcb, nil, "medicus-test-csp")},
	}
	s, err := b.TestOnlyCertChain()
	if err != nil {
		t.Fatal(err)
	}
	f.signer = s
	f.roots = map[string]*Roots{product: {Product: product, ARK: s.Ark, ASK: s.Ask, ASVK: s.Asvk}}
	return f
}

// encodeTCB is DecodeTCB's inverse.
func encodeTCB(product string, t TCB) uint64 {
	b := make([]byte, 8)
	if product == Turin {
		b[0], b[1], b[2], b[3], b[7] = t.FMC, t.Bootloader, t.TEE, t.SNP, t.Microcode
	} else {
		b[0], b[1], b[6], b[7] = t.Bootloader, t.TEE, t.SNP, t.Microcode
	}
	return binary.LittleEndian.Uint64(b)
}

// reportSpec describes a report to build; zero fields take fixture defaults.
type reportSpec struct {
	version    uint32
	signer     abi.ReportSigner
	policy     uint64
	vmpl       uint32
	reportData [64]byte
	chipID     *[64]byte
	tcb        *TCB
	fms        *[3]byte // nil: the fixture product's family, model, stepping (version >= 3)
	mask       bool
}

var fmsOf = map[string][3]byte{Milan: {0x19, 0x01, 0x01}, Genoa: {0x19, 0x11, 0x01}, Turin: {0x1A, 0x02, 0x00}}

// report builds and signs a raw report with the fixture's VCEK or VLEK.
func (f *fixture) report(t testing.TB, s reportSpec) []byte {
	t.Helper()
	if s.version == 0 {
		s.version = 3
	}
	if s.policy == 0 {
		s.policy = 0x30000
	}
	tcb := f.tcb
	if s.tcb != nil {
		tcb = *s.tcb
	}
	chip := f.hwid
	if s.chipID != nil {
		chip = *s.chipID
	}
	raw := make([]byte, ReportSize)
	le := binary.LittleEndian
	le.PutUint32(raw[0x00:], s.version)
	le.PutUint32(raw[0x04:], 7) // guest SVN
	le.PutUint64(raw[0x08:], s.policy)
	copy(raw[0x10:0x20], "family-id-xxxxxx")
	copy(raw[0x20:0x30], "image-id-yyyyyyy")
	le.PutUint32(raw[0x30:], s.vmpl)
	le.PutUint32(raw[0x34:], abi.SignEcdsaP384Sha384)
	enc := encodeTCB(f.product, tcb)
	le.PutUint64(raw[0x38:], enc) // current
	le.PutUint64(raw[0x40:], 1)   // platform info: SMT enabled
	info := abi.SignerInfo{SigningKey: s.signer, MaskChipKey: s.mask}
	le.PutUint32(raw[0x48:], abi.ComposeSignerInfo(info))
	copy(raw[0x50:0x90], s.reportData[:])
	for i := 0x90; i < 0xC0; i++ {
		raw[i] = byte(i) // measurement
	}
	copy(raw[0xC0:0xE0], "host-data-0123456789abcdefghijkl")
	le.PutUint64(raw[0x180:], enc) // reported
	if s.version >= 3 {
		fms := fmsOf[f.product]
		if s.fms != nil {
			fms = *s.fms
		}
		raw[0x188], raw[0x189], raw[0x18A] = fms[0], fms[1], fms[2]
	}
	if !s.mask {
		copy(raw[0x1A0:0x1E0], chip[:])
	}
	le.PutUint64(raw[0x1E0:], enc) // committed
	raw[0x1E8], raw[0x1E9], raw[0x1EA] = 9, 55, 1
	raw[0x1EC], raw[0x1ED], raw[0x1EE] = 9, 55, 1
	le.PutUint64(raw[0x1F0:], enc) // launch
	if s.signer != abi.NoneReportSigner {
		f.sign(t, raw)
	}
	return raw
}

func (f *fixture) sign(t testing.TB, raw []byte) {
	t.Helper()
	r, s, err := f.signer.Sign(raw[:signedLen])
	if err != nil {
		t.Fatal(err)
	}
	if err := abi.SetSignature(r, s, raw); err != nil {
		t.Fatal(err)
	}
}

// table is the fixture's certificate table: ARK, ASK, VCEK, VLEK (and the library's zero-GUID
// ASVK entry).
func (f *fixture) table(t testing.TB) []byte {
	t.Helper()
	b, err := f.signer.CertTableBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vcekOnlyTable is a table holding just the VCEK.
func vcekOnlyTable(der []byte) []byte {
	ct := abi.CertTable{Entries: []abi.CertTableEntry{{GUID: uuid.MustParse(abi.VcekGUID), RawCert: der}}}
	return ct.Marshal()
}

// crl makes an ARK-signed CRL valid [from, from+life) revoking serials.
func (f *fixture) crl(t testing.TB, from time.Time, life time.Duration, serials ...*big.Int) []byte {
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
	b, err := x509.CreateRevocationList(rand.Reader, tmpl, f.signer.Ark, f.signer.Keys.Ark)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newP384(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
