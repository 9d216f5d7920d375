// Package sgxtest is a fake SGX DCAP platform for tests: a private PCK hierarchy shaped like
// Intel's (root CA, PCK Platform CA, PCK certificate with SGX extensions, TCB signing
// certificate), collateral signed by it, and SGX quotes signed by a quoting enclave and
// attestation key of its own. Verify its quotes with sgx.Options{Root: p.Root}.
//
// INSECURE: for tests only. Nothing it makes verifies under Intel's real root.
package sgxtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/intel/inteltest"
)

// Now is a time at which a Platform's certificates and collateral are valid.
var Now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// The platform's identity as its PCK certificate and quotes state it.
var (
	FMSPC  = [6]byte{0x00, 0x90, 0x6e, 0xa1, 0x00, 0x00}
	PCEID  = [2]byte{0, 0}
	PCKTCB = [16]byte{4, 4, 3, 3, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	PCESVN = 13
	QESVN  = uint16(8)
	// QEMRSIGNER is the quoting enclave's signer: Intel's (attest/sgx pins it), as the QE
	// identity names it.
	QEMRSIGNER = [32]byte{
		0x8c, 0x4f, 0x57, 0x75, 0xd7, 0x96, 0x50, 0x3e, 0x96, 0x13, 0x7f, 0x77, 0xc6, 0x8a, 0x82, 0x9a,
		0x00, 0x56, 0xac, 0x8d, 0xed, 0x70, 0x14, 0x0b, 0x08, 0x1b, 0x09, 0x44, 0x90, 0xc5, 0x7b, 0xff,
	}
)

// Layout constants of the quote format (see attest/sgx).
const (
	HeaderSize     = 48
	ReportBodySize = 384
)

var qeVendorIntel = [16]byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}

func fill(b byte) [32]byte {
	var a [32]byte
	for i := range a {
		a[i] = b
	}
	return a
}

// Platform is a fake SGX platform and its fake Intel.
type Platform struct {
	// PKI is the fake Intel hierarchy; Root, CA and TCBSigner (and their keys) are its.
	PKI                            *inteltest.PKI
	RootKey, CAKey, PCKKey, TCBKey *ecdsa.PrivateKey
	Root, CA, PCK, TCBSigner       *x509.Certificate
	// PCKChainPEM is the chain a quote carries: PCK, PCK CA, root.
	PCKChainPEM []byte
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var serial atomic.Int64

func mkCert(t testing.TB, tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(100 + serial.Add(1))
	tmpl.NotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tmpl.NotAfter = time.Date(2033, 1, 1, 0, 0, 0, 0, time.UTC)
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type extEntry struct {
	ID    asn1.ObjectIdentifier
	Value asn1.RawValue
}

func raw(t testing.TB, v any) asn1.RawValue {
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return asn1.RawValue{FullBytes: b}
}

// SGXExtensions encodes a PCK certificate's SGX extensions as Intel's PCK certificate profile
// lays them out: PPID, TCB (16 component SVNs, PCESVN, CPUSVN), PCE ID, FMSPC, SGX type,
// platform instance ID and the configuration with smtEnabled.
func SGXExtensions(t testing.TB, comps [16]byte, pcesvn int) []byte {
	return sgxExtensions(t, comps, pcesvn, true)
}

func sgxExtensions(t testing.TB, comps [16]byte, pcesvn int, withConfig bool) []byte {
	oid := func(n ...int) asn1.ObjectIdentifier {
		return append(append(asn1.ObjectIdentifier{}, intel.OIDSGXExtensions...), n...)
	}
	var tcb []extEntry
	for i, c := range comps {
		tcb = append(tcb, extEntry{oid(2, i+1), raw(t, int(c))})
	}
	tcb = append(tcb, extEntry{oid(2, 17), raw(t, pcesvn)}, extEntry{oid(2, 18), raw(t, comps[:])})
	config := []extEntry{{oid(7, 1), raw(t, false)}, {oid(7, 2), raw(t, true)}, {oid(7, 3), raw(t, true)}}
	exts := []extEntry{
		{oid(1), raw(t, make([]byte, 16))},
		{oid(2), raw(t, tcb)},
		{oid(3), raw(t, PCEID[:])},
		{oid(4), raw(t, FMSPC[:])},
		{oid(5), raw(t, asn1.Enumerated(1))},
		{oid(6), raw(t, make([]byte, 16))},
	}
	if withConfig {
		exts = append(exts, extEntry{oid(7), raw(t, config)})
	}
	b, err := asn1.Marshal(exts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// NewPlatform makes a fresh hierarchy and keys: root CA, PCK Platform CA and TCB signing
// certificate from inteltest (the one fake Intel PKI), and a PCK certificate with this
// package's SGX extensions.
func NewPlatform(t testing.TB) *Platform {
	t.Helper()
	pki, err := inteltest.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2033, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	p := &Platform{PKI: pki, RootKey: pki.RootKey, CAKey: pki.PCKCAKey, PCKKey: mustKey(t), TCBKey: pki.TCBSigningKey,
		Root: pki.Root, CA: pki.PCKCA, TCBSigner: pki.TCBSigning}
	p.PCK = mkCert(t, &x509.Certificate{
		Subject:         pkix.Name{CommonName: "Intel SGX PCK Certificate", Organization: []string{"Intel Corporation (TEST)"}},
		KeyUsage:        x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtraExtensions: []pkix.Extension{{Id: intel.OIDSGXExtensions, Value: SGXExtensions(t, PCKTCB, PCESVN)}},
	}, p.CA, &p.PCKKey.PublicKey, p.CAKey)
	p.PCKChainPEM = PEMChain(p.PCK, p.CA, p.Root)
	return p
}

// ChainWithoutConfiguration returns a PCK chain for the platform's PCK key whose PCK certificate
// lacks the configuration extension (as older platforms' do), for QuoteOptions.Chain.
func (p *Platform) ChainWithoutConfiguration(t testing.TB) []byte {
	t.Helper()
	pck := mkCert(t, &x509.Certificate{
		Subject:         pkix.Name{CommonName: "Intel SGX PCK Certificate", Organization: []string{"Intel Corporation (TEST)"}},
		KeyUsage:        x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtraExtensions: []pkix.Extension{{Id: intel.OIDSGXExtensions, Value: sgxExtensions(t, PCKTCB, PCESVN, false)}},
	}, p.CA, &p.PCKKey.PublicKey, p.CAKey)
	return PEMChain(pck, p.CA, p.Root)
}

// PEMChain concatenates certificates as PEM (inteltest.ChainPEM).
func PEMChain(certs ...*x509.Certificate) []byte { return inteltest.ChainPEM(certs...) }

// RawSign makes Intel's r||s signature over SHA-256(msg) (inteltest.SignRaw).
func RawSign(_ testing.TB, k *ecdsa.PrivateKey, msg []byte) []byte { return inteltest.SignRaw(k, msg) }

// Enclave is what a quote says about the quoted enclave.
type Enclave struct {
	MRENCLAVE, MRSIGNER [32]byte
	ProdID, SVN         uint16
	// Flags and XFRM are ATTRIBUTES; Flags bit 1 is DEBUG.
	Flags, XFRM uint64
}

// DefaultEnclave is a production (non-debug) 64-bit enclave.
func DefaultEnclave() Enclave {
	return Enclave{MRENCLAVE: fill(0xe1), MRSIGNER: fill(0x51), ProdID: 7, SVN: 3, Flags: 0x05, XFRM: 0x03}
}

// ReportBody encodes an SGX report body.
func ReportBody(e Enclave, reportData [64]byte) []byte {
	r := make([]byte, ReportBodySize)
	le := binary.LittleEndian
	copy(r[0:16], PCKTCB[:])
	le.PutUint64(r[48:], e.Flags)
	le.PutUint64(r[56:], e.XFRM)
	copy(r[64:96], e.MRENCLAVE[:])
	copy(r[128:160], e.MRSIGNER[:])
	le.PutUint16(r[256:], e.ProdID)
	le.PutUint16(r[258:], e.SVN)
	copy(r[320:], reportData[:])
	return r
}

// QuoteOptions vary how a quote is made; the zero value makes a version 3 quote.
type QuoteOptions struct {
	// Version is 3 (zero means 3), 4 or 5.
	Version uint16
	// AuthData is the QE authentication data.
	AuthData []byte
	// Chain replaces the PCK chain the quote carries.
	Chain []byte
	// QE replaces the quoting enclave's identity (default: QEIdentity()).
	QE *Enclave
}

// QEIdentity is the quoting enclave's identity in the quotes a Platform makes: Intel's SGX QE
// (product 1, SVN QESVN, not debug).
func QEIdentity() Enclave {
	return Enclave{MRENCLAVE: fill(0x4e), MRSIGNER: QEMRSIGNER, ProdID: 1, SVN: QESVN, Flags: 0x11, XFRM: 0xe7}
}

// Quote makes an SGX DCAP quote of enclave e with reportData, under a fresh attestation key.
func (p *Platform) Quote(t testing.TB, e Enclave, reportData [64]byte, o QuoteOptions) []byte {
	t.Helper()
	if o.Version == 0 {
		o.Version = 3
	}
	le := binary.LittleEndian
	ak := mustKey(t)
	akRaw := make([]byte, 64)
	ak.X.FillBytes(akRaw[:32])
	ak.Y.FillBytes(akRaw[32:])

	// The QE report: the QE identity sgxtest's collateral describes, with SHA-256(attestation
	// key || auth data) as its report data.
	qeID := QEIdentity()
	if o.QE != nil {
		qeID = *o.QE
	}
	qe := ReportBody(qeID, [64]byte{})
	h := sha256.Sum256(append(append([]byte{}, akRaw...), o.AuthData...))
	copy(qe[320:], h[:])
	qeSig := RawSign(t, p.PCKKey, qe)

	chain := o.Chain
	if chain == nil {
		chain = p.PCKChainPEM
	}
	qeCert := append(append([]byte{}, qe...), qeSig...)
	qeCert = le.AppendUint16(qeCert, uint16(len(o.AuthData)))
	qeCert = append(qeCert, o.AuthData...)
	qeCert = le.AppendUint16(qeCert, 5)
	qeCert = le.AppendUint32(qeCert, uint32(len(chain)))
	qeCert = append(qeCert, chain...)

	signed := make([]byte, HeaderSize)
	le.PutUint16(signed[0:], o.Version)
	le.PutUint16(signed[2:], 2)
	le.PutUint16(signed[8:], QESVN)
	le.PutUint16(signed[10:], uint16(PCESVN))
	copy(signed[12:28], qeVendorIntel[:])
	if o.Version == 5 {
		signed = le.AppendUint16(signed, 1)
		signed = le.AppendUint32(signed, ReportBodySize)
	}
	signed = append(signed, ReportBody(e, reportData)...)
	sig := RawSign(t, ak, signed)

	sd := append(append([]byte{}, sig...), akRaw...)
	if o.Version == 3 {
		sd = append(sd, qeCert...)
	} else {
		sd = le.AppendUint16(sd, 6)
		sd = le.AppendUint32(sd, uint32(len(qeCert)))
		sd = append(sd, qeCert...)
	}
	out := append([]byte{}, signed...)
	out = le.AppendUint32(out, uint32(len(sd)))
	return append(out, sd...)
}

// CollateralOptions set what the collateral says about the platform; the zero value makes both
// the platform and the QE UpToDate.
type CollateralOptions struct {
	PlatformStatus intel.Status
	QEStatus       intel.Status
	Advisories     []string
	RevokePCK      bool
	// FMSPC replaces the platform's FMSPC in the TCB info (hex).
	FMSPC string
	// TCBInfoV2 writes TCB info version 2 (PCS API v3: no id, sgxtcbcompNNsvn members).
	TCBInfoV2 bool
	// EvalNumber is the tcbEvaluationDataNumber of TCB info and QE identity; zero means 17.
	EvalNumber int
}

func signedJSON(t testing.TB, k *ecdsa.PrivateKey, name string, v any) []byte {
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Appendf(nil, `{"%s":%s,"signature":"%s"}`, name, body, hex.EncodeToString(RawSign(t, k, body)))
}

func mkCRL(t testing.TB, issuer *x509.Certificate, key *ecdsa.PrivateKey, revoked ...*big.Int) []byte {
	der, err := inteltest.CRL(issuer, key, Now.AddDate(0, 0, -10), Now.AddDate(0, 0, 20), revoked...)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// Collateral returns the files of a collateral directory (intel.Files) for the platform, valid
// from ten days before Now to twenty days after.
func (p *Platform) Collateral(t testing.TB, o CollateralOptions) map[string][]byte {
	t.Helper()
	if o.PlatformStatus == "" {
		o.PlatformStatus = intel.UpToDate
	}
	if o.QEStatus == "" {
		o.QEStatus = intel.UpToDate
	}
	if o.FMSPC == "" {
		o.FMSPC = hex.EncodeToString(FMSPC[:])
	}
	if o.EvalNumber == 0 {
		o.EvalNumber = 17
	}
	issue, next := Now.AddDate(0, 0, -10), Now.AddDate(0, 0, 20)
	comps := func(c [16]byte) []map[string]int {
		var out []map[string]int
		for _, v := range c {
			out = append(out, map[string]int{"svn": int(v)})
		}
		return out
	}
	type obj = map[string]any
	higher := PCKTCB
	higher[1]++
	tcbInfo := obj{
		"id": "SGX", "version": 3, "issueDate": issue, "nextUpdate": next,
		"fmspc": o.FMSPC, "pceId": hex.EncodeToString(PCEID[:]),
		"tcbType": 0, "tcbEvaluationDataNumber": o.EvalNumber,
		"tcbLevels": []obj{
			{"tcb": obj{"sgxtcbcomponents": comps(higher), "pcesvn": PCESVN}, "tcbDate": "2026-02-01T00:00:00Z", "tcbStatus": "UpToDate"},
			{"tcb": obj{"sgxtcbcomponents": comps(PCKTCB), "pcesvn": PCESVN}, "tcbDate": "2025-08-01T00:00:00Z", "tcbStatus": o.PlatformStatus, "advisoryIDs": o.Advisories},
			{"tcb": obj{"sgxtcbcomponents": comps([16]byte{}), "pcesvn": 0}, "tcbDate": "2020-01-01T00:00:00Z", "tcbStatus": "OutOfDate", "advisoryIDs": []string{"INTEL-SA-00000"}},
		},
	}
	qeID := obj{
		"id": "QE", "version": 2, "issueDate": issue, "nextUpdate": next, "tcbEvaluationDataNumber": o.EvalNumber,
		"miscselect": "00000000", "miscselectMask": "FFFFFFFF",
		"attributes": "11000000000000000000000000000000", "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
		"mrsigner": hex.EncodeToString(QEMRSIGNER[:]), "isvprodid": 1,
		"tcbLevels": []obj{
			{"tcb": obj{"isvsvn": QESVN}, "tcbDate": "2025-08-01T00:00:00Z", "tcbStatus": o.QEStatus},
			{"tcb": obj{"isvsvn": 0}, "tcbDate": "2020-01-01T00:00:00Z", "tcbStatus": "OutOfDate"},
		},
	}
	if o.TCBInfoV2 {
		delete(tcbInfo, "id")
		tcbInfo["version"] = 2
		for _, l := range tcbInfo["tcbLevels"].([]obj) {
			tcb := l["tcb"].(obj)
			for i, c := range tcb["sgxtcbcomponents"].([]map[string]int) {
				tcb[fmt.Sprintf("sgxtcbcomp%02dsvn", i+1)] = c["svn"]
			}
			delete(tcb, "sgxtcbcomponents")
		}
	}
	var revoked []*big.Int
	if o.RevokePCK {
		revoked = append(revoked, p.PCK.SerialNumber)
	}
	return map[string][]byte{
		intel.FileTCBInfo:         signedJSON(t, p.TCBKey, "tcbInfo", tcbInfo),
		intel.FileTCBInfoChain:    PEMChain(p.TCBSigner, p.Root),
		intel.FileQEIdentity:      signedJSON(t, p.TCBKey, "enclaveIdentity", qeID),
		intel.FileQEIdentityChain: PEMChain(p.TCBSigner, p.Root),
		intel.FilePCKCRL:          mkCRL(t, p.CA, p.CAKey, revoked...),
		intel.FilePCKCRLChain:     PEMChain(p.CA, p.Root),
		intel.FileRootCRL:         mkCRL(t, p.Root, p.RootKey),
	}
}
