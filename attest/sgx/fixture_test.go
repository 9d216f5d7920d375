package sgx

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
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest/intel"
)

// A private PCK hierarchy shaped like Intel's (root, PCK Platform CA, PCK certificate with SGX
// extensions, TCB signing certificate) with collateral signed by it, and quotes signed by a QE
// and attestation key of our own: the tests' stand-in for a real SGX platform.

var (
	fixtureNow   = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	fixtureFMSPC = [6]byte{0x00, 0x90, 0x6e, 0xa1, 0x00, 0x00}
	fixturePCEID = [2]byte{0, 0}
	qeMRSIGNER   = bytes32(0x8c)
)

func bytes32(b byte) [32]byte {
	var a [32]byte
	for i := range a {
		a[i] = b
	}
	return a
}

type pki struct {
	rootKey, caKey, pckKey, tcbKey *ecdsa.PrivateKey
	root, ca, pck, tcb             *x509.Certificate
	pckChainPEM                    []byte
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var serial int64 = 100

func mkCert(t testing.TB, tmpl *x509.Certificate, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) *x509.Certificate {
	serial++
	tmpl.SerialNumber = big.NewInt(serial)
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		tmpl.NotAfter = time.Date(2033, 1, 1, 0, 0, 0, 0, time.UTC)
	}
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

func caTmpl(cn string) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Intel Corporation (TEST)"}},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
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

// sgxExtensions encodes the PCK certificate's SGX extensions (Intel's PCK Certificate and CRL
// Profile): PPID, TCB (16 component SVNs, PCESVN, CPUSVN), PCE ID, FMSPC, SGX type and, for
// Platform CA certificates, the configuration with smtEnabled.
func sgxExtensions(t testing.TB, comps [16]byte, pcesvn int) []byte {
	base := intel.OIDSGXExtensions
	oid := func(n ...int) asn1.ObjectIdentifier { return append(append(asn1.ObjectIdentifier{}, base...), n...) }
	var tcb []extEntry
	for i, c := range comps {
		tcb = append(tcb, extEntry{oid(2, i+1), raw(t, int(c))})
	}
	tcb = append(tcb, extEntry{oid(2, 17), raw(t, pcesvn)})
	tcb = append(tcb, extEntry{oid(2, 18), raw(t, comps[:])})
	config := []extEntry{
		{oid(7, 1), raw(t, false)},
		{oid(7, 2), raw(t, true)},
		{oid(7, 3), raw(t, true)},
	}
	exts := []extEntry{
		{oid(1), raw(t, make([]byte, 16))},
		{oid(2), raw(t, tcb)},
		{oid(3), raw(t, fixturePCEID[:])},
		{oid(4), raw(t, fixtureFMSPC[:])},
		{oid(5), raw(t, asn1.Enumerated(1))},
		{oid(6), raw(t, make([]byte, 16))},
		{oid(7), raw(t, config)},
	}
	b, err := asn1.Marshal(exts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var pckTCB = [16]byte{4, 4, 3, 3, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

const pckPCESVN = 13

func newPKI(t testing.TB) *pki {
	p := &pki{rootKey: mustKey(t), caKey: mustKey(t), pckKey: mustKey(t), tcbKey: mustKey(t)}
	p.root = mkCert(t, caTmpl("Intel SGX Root CA"), nil, &p.rootKey.PublicKey, p.rootKey)
	p.ca = mkCert(t, caTmpl("Intel SGX PCK Platform CA"), p.root, &p.caKey.PublicKey, p.rootKey)
	p.pck = mkCert(t, &x509.Certificate{
		Subject:         pkix.Name{CommonName: "Intel SGX PCK Certificate", Organization: []string{"Intel Corporation (TEST)"}},
		KeyUsage:        x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtraExtensions: []pkix.Extension{{Id: intel.OIDSGXExtensions, Value: sgxExtensions(t, pckTCB, pckPCESVN)}},
	}, p.ca, &p.pckKey.PublicKey, p.caKey)
	p.tcb = mkCert(t, &x509.Certificate{
		Subject:  pkix.Name{CommonName: "Intel SGX TCB Signing", Organization: []string{"Intel Corporation (TEST)"}},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
	}, p.root, &p.tcbKey.PublicKey, p.rootKey)
	p.pckChainPEM = pemChain(p.pck, p.ca, p.root)
	return p
}

func pemChain(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

func rawSign(t testing.TB, k *ecdsa.PrivateKey, msg []byte) []byte {
	h := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, k, h[:])
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

// body is what a test may set in the quoted enclave report.
type body struct {
	mrenclave, mrsigner [32]byte
	prodID, svn         uint16
	flags, xfrm         uint64
	reportData          [64]byte
}

func defaultBody() body {
	b := body{mrenclave: bytes32(0xe1), mrsigner: bytes32(0x51), prodID: 7, svn: 3, flags: 0x05, xfrm: 0x03}
	copy(b.reportData[:], "medicus sgx test report data")
	return b
}

func encodeBody(b body) []byte {
	r := make([]byte, ReportBodySize)
	le := binary.LittleEndian
	copy(r[0:16], pckTCB[:])
	le.PutUint64(r[48:], b.flags)
	le.PutUint64(r[56:], b.xfrm)
	copy(r[64:96], b.mrenclave[:])
	copy(r[128:160], b.mrsigner[:])
	le.PutUint16(r[256:], b.prodID)
	le.PutUint16(r[258:], b.svn)
	copy(r[320:], b.reportData[:])
	return r
}

// quoteOpts build one quote.
type quoteOpts struct {
	version  uint16
	body     body
	pki      *pki
	qeSVN    uint16
	authData []byte
	chain    []byte // nil means the PKI's PCK chain
}

func buildQuote(t testing.TB, o quoteOpts) []byte {
	le := binary.LittleEndian
	ak := mustKey(t)
	akRaw := make([]byte, 64)
	ak.X.FillBytes(akRaw[:32])
	ak.Y.FillBytes(akRaw[32:])

	// The QE report: Intel's QE identity, and SHA-256(attestation key || auth data) as data.
	qe := make([]byte, ReportBodySize)
	copy(qe[0:16], pckTCB[:])
	le.PutUint64(qe[48:], 0x11)
	le.PutUint64(qe[56:], 0xe7)
	qeMR := bytes32(0x4e)
	copy(qe[64:96], qeMR[:])
	copy(qe[128:160], qeMRSIGNER[:])
	le.PutUint16(qe[256:], 1)
	le.PutUint16(qe[258:], o.qeSVN)
	h := sha256.Sum256(append(append([]byte{}, akRaw...), o.authData...))
	copy(qe[320:], h[:])
	qeSig := rawSign(t, o.pki.pckKey, qe)

	chain := o.chain
	if chain == nil {
		chain = o.pki.pckChainPEM
	}
	certPCK := make([]byte, 6, 6+len(chain))
	le.PutUint16(certPCK, certTypePCKChain)
	le.PutUint32(certPCK[2:], uint32(len(chain)))
	certPCK = append(certPCK, chain...)

	qeCert := append(append([]byte{}, qe...), qeSig...)
	qeCert = le.AppendUint16(qeCert, uint16(len(o.authData)))
	qeCert = append(qeCert, o.authData...)
	qeCert = append(qeCert, certPCK...)

	hdr := make([]byte, headerSize)
	le.PutUint16(hdr[0:], o.version)
	le.PutUint16(hdr[2:], attestationKeyP256)
	le.PutUint16(hdr[8:], o.qeSVN)
	le.PutUint16(hdr[10:], pckPCESVN)
	copy(hdr[12:28], IntelQEVendorID[:])
	signed := hdr
	if o.version == 5 {
		signed = le.AppendUint16(signed, bodyTypeSGX)
		signed = le.AppendUint32(signed, ReportBodySize)
	}
	signed = append(signed, encodeBody(o.body)...)
	sig := rawSign(t, ak, signed)

	sd := append(append([]byte{}, sig...), akRaw...)
	if o.version == 3 {
		sd = append(sd, qeCert...)
	} else {
		sd = le.AppendUint16(sd, certTypeQEReport)
		sd = le.AppendUint32(sd, uint32(len(qeCert)))
		sd = append(sd, qeCert...)
	}
	out := append([]byte{}, signed...)
	out = le.AppendUint32(out, uint32(len(sd)))
	return append(out, sd...)
}

// collateralOpts set the TCB statuses the collateral gives the fixture platform and QE.
type collateralOpts struct {
	platformStatus intel.Status
	qeStatus       intel.Status
	advisories     []string
	revokePCK      bool
	fmspc          string
}

func signedJSON(t testing.TB, k *ecdsa.PrivateKey, name string, v any) []byte {
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	sig := rawSign(t, k, body)
	return fmt.Appendf(nil, `{"%s":%s,"signature":"%s"}`, name, body, hex.EncodeToString(sig))
}

func mkCRL(t testing.TB, issuer *x509.Certificate, key *ecdsa.PrivateKey, revoked ...*big.Int) []byte {
	var entries []x509.RevocationListEntry
	for _, s := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: fixtureNow.AddDate(0, -1, 0)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(1),
		ThisUpdate:                fixtureNow.AddDate(0, 0, -10),
		NextUpdate:                fixtureNow.AddDate(0, 0, 20),
		RevokedCertificateEntries: entries,
	}, issuer, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// buildCollateral returns a collateral directory's files for the fixture platform.
func buildCollateral(t testing.TB, p *pki, o collateralOpts) map[string][]byte {
	if o.platformStatus == "" {
		o.platformStatus = intel.UpToDate
	}
	if o.qeStatus == "" {
		o.qeStatus = intel.UpToDate
	}
	if o.fmspc == "" {
		o.fmspc = hex.EncodeToString(fixtureFMSPC[:])
	}
	issue, next := fixtureNow.AddDate(0, 0, -10), fixtureNow.AddDate(0, 0, 20)
	comps := func(c [16]byte) []map[string]int {
		var out []map[string]int
		for _, v := range c {
			out = append(out, map[string]int{"svn": int(v)})
		}
		return out
	}
	type level = map[string]any
	higher := pckTCB
	higher[1]++
	tcbInfo := map[string]any{
		"id": "SGX", "version": 3, "issueDate": issue, "nextUpdate": next,
		"fmspc": o.fmspc, "pceId": hex.EncodeToString(fixturePCEID[:]),
		"tcbType": 0, "tcbEvaluationDataNumber": 17,
		"tcbLevels": []level{
			{"tcb": level{"sgxtcbcomponents": comps(higher), "pcesvn": pckPCESVN}, "tcbDate": "2026-02-01T00:00:00Z", "tcbStatus": "UpToDate"},
			{"tcb": level{"sgxtcbcomponents": comps(pckTCB), "pcesvn": pckPCESVN}, "tcbDate": "2025-08-01T00:00:00Z", "tcbStatus": o.platformStatus, "advisoryIDs": o.advisories},
			{"tcb": level{"sgxtcbcomponents": comps([16]byte{}), "pcesvn": 0}, "tcbDate": "2020-01-01T00:00:00Z", "tcbStatus": "OutOfDate", "advisoryIDs": []string{"INTEL-SA-00000"}},
		},
	}
	qeID := map[string]any{
		"id": "QE", "version": 2, "issueDate": issue, "nextUpdate": next, "tcbEvaluationDataNumber": 17,
		"miscselect": "00000000", "miscselectMask": "FFFFFFFF",
		"attributes": "11000000000000000000000000000000", "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
		"mrsigner": hex.EncodeToString(qeMRSIGNER[:]), "isvprodid": 1,
		"tcbLevels": []level{
			{"tcb": level{"isvsvn": 8}, "tcbDate": "2025-08-01T00:00:00Z", "tcbStatus": o.qeStatus},
			{"tcb": level{"isvsvn": 0}, "tcbDate": "2020-01-01T00:00:00Z", "tcbStatus": "OutOfDate"},
		},
	}
	var revoked []*big.Int
	if o.revokePCK {
		revoked = append(revoked, p.pck.SerialNumber)
	}
	return map[string][]byte{
		intel.FileTCBInfo:         signedJSON(t, p.tcbKey, "tcbInfo", tcbInfo),
		intel.FileTCBInfoChain:    pemChain(p.tcb, p.root),
		intel.FileQEIdentity:      signedJSON(t, p.tcbKey, "enclaveIdentity", qeID),
		intel.FileQEIdentityChain: pemChain(p.tcb, p.root),
		intel.FilePCKCRL:          mkCRL(t, p.ca, p.caKey, revoked...),
		intel.FilePCKCRLChain:     pemChain(p.ca, p.root),
		intel.FileRootCRL:         mkCRL(t, p.root, p.rootKey),
	}
}
