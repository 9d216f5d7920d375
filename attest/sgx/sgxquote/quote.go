// Package sgxquote is the binary layout of Intel SGX DCAP quotes and Open Enclave remote report
// headers: parsing only, no signature, certificate or collateral check (attest/sgx verifies).
// It imports nothing but package attest, so that guest code (enclave/ego) can check the quotes
// it obtains without linking the verifier, the PCS fetcher or the collateral cache.
package sgxquote

import (
	"encoding/binary"
	"encoding/hex"

	"github.com/medicus-cloud/trust/attest"
)

// Layout of Intel SGX DCAP ECDSA quotes (Intel SGX ECDSA Quote Library API, appendix "Quote
// format"; Intel TDX DCAP Quoting Library API for versions 4 and 5):
//
//	v3: header (48) | enclave report (384)                        | sig data len (4) | v3 sig data
//	v4: header (48) | enclave report (384)                        | sig data len (4) | v4 sig data
//	v5: header (48) | body type 1 (2) | size 384 (4) | report     | sig data len (4) | v4 sig data
//
// The attestation key signs everything before "sig data len".
//
//	v3 sig data: signature (64) | attestation key (64) | QE report (384) | QE report signature
//	             (64) | QE auth data len (2) | QE auth data | cert type 5 (2) | size (4) | PEM chain
//	v4 sig data: signature (64) | attestation key (64) | cert type 6 (2) | size (4) | QE report
//	             (384) | QE report signature (64) | QE auth data len (2) | QE auth data |
//	             cert type 5 (2) | size (4) | PEM chain
const (
	// HeaderSize is the size of the quote header.
	HeaderSize     = 48
	ReportBodySize = 384
	v5DescSize     = 6
	sigKeySize     = 64 + 64
	certHeaderSize = 6

	// MaxQuoteSize bounds a quote; real ones are about 4.5 KiB.
	MaxQuoteSize = 64 << 10

	teeTypeSGX         = 0x00
	teeTypeTDX         = 0x81
	attestationKeyP256 = 2
	// CertTypePCKChain and CertTypeQEReport are the certification data types of the PEM PCK
	// chain and of the QE report certification data that wraps it.
	CertTypePCKChain = 5
	CertTypeQEReport = 6
	bodyTypeSGX      = 1

	// AttributeDebug is the DEBUG bit of an enclave's ATTRIBUTES.FLAGS: the enclave's memory can
	// be read and written by a debugger on the host.
	AttributeDebug = 1 << 1
)

// IntelQEVendorID is the QE vendor ID of Intel's quoting enclaves, SGX and TD alike.
var IntelQEVendorID = [16]byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}

// QEReportSignatureSize is the size of the PCK's r||s signature over the QE report.
const QEReportSignatureSize = 64

// SplitQEReportCertData splits the QE report certification data of a quote (what certification
// data type 6 wraps), SGX and TDX alike: the QE report, its signature by the PCK and the QE
// authentication data, and returns what follows them, the PCK certification data, for the caller
// to parse. The slices alias s.
func SplitQEReportCertData(s []byte) (qeReport, qeReportSig, qeAuthData, rest []byte, err error) {
	if len(s) < ReportBodySize+QEReportSignatureSize+2 {
		return nil, nil, nil, nil, attest.Malformed("quote.qe_report", "QE report certification data truncated (%d bytes)", len(s))
	}
	qeReport = s[:ReportBodySize]
	qeReportSig = s[ReportBodySize : ReportBodySize+QEReportSignatureSize]
	s = s[ReportBodySize+QEReportSignatureSize:]
	authLen := int(binary.LittleEndian.Uint16(s))
	s = s[2:]
	if authLen > len(s) {
		return nil, nil, nil, nil, attest.Malformed("quote.qe_auth_data", "QE authentication data length %d exceeds the %d bytes left", authLen, len(s))
	}
	return qeReport, qeReportSig, s[:authLen], s[authLen:], nil
}

// ReportBody is an SGX enclave report body (sgx_report_body_t): the quoted enclave's identity, or
// the quoting enclave's in a QE report.
type ReportBody struct {
	CPUSVN       [16]byte
	MiscSelect   uint32
	ISVExtProdID [16]byte
	// Flags and XFRM are the two halves of ATTRIBUTES.
	Flags       uint64
	XFRM        uint64
	MRENCLAVE   [32]byte
	MRSIGNER    [32]byte
	ConfigID    [64]byte
	ISVProdID   uint16
	ISVSVN      uint16
	ConfigSVN   uint16
	ISVFamilyID [16]byte
	ReportData  [64]byte
}

// Debug reports the DEBUG attribute.
func (r *ReportBody) Debug() bool { return r.Flags&AttributeDebug != 0 }

// ParseReportBody parses a 384-byte SGX report body.
func ParseReportBody(b []byte) (*ReportBody, error) {
	if len(b) != ReportBodySize {
		return nil, attest.Malformed("report_body", "%d bytes, want %d", len(b), ReportBodySize)
	}
	le := binary.LittleEndian
	r := &ReportBody{
		MiscSelect: le.Uint32(b[16:]),
		Flags:      le.Uint64(b[48:]),
		XFRM:       le.Uint64(b[56:]),
		ISVProdID:  le.Uint16(b[256:]),
		ISVSVN:     le.Uint16(b[258:]),
		ConfigSVN:  le.Uint16(b[260:]),
	}
	copy(r.CPUSVN[:], b[0:16])
	copy(r.ISVExtProdID[:], b[32:48])
	copy(r.MRENCLAVE[:], b[64:96])
	copy(r.MRSIGNER[:], b[128:160])
	copy(r.ConfigID[:], b[192:256])
	copy(r.ISVFamilyID[:], b[304:320])
	copy(r.ReportData[:], b[320:384])
	return r, nil
}

// Quote is a parsed SGX DCAP quote, version 3, 4 or 5 (with an SGX enclave body). Slices alias
// the bytes it was parsed from.
type Quote struct {
	Version    uint16
	QESVN      uint16
	PCESVN     uint16
	QEVendorID [16]byte
	UserData   [20]byte
	Body       ReportBody

	// Signed is what the attestation key signed: the header and the enclave report (with the v5
	// body descriptor between them).
	Signed            []byte
	Signature         []byte // r||s, 64 bytes
	AttestationKey    []byte // X||Y, 64 bytes
	QEReport          []byte // 384 bytes, signed by the PCK
	QEReportSignature []byte // r||s, 64 bytes
	QEAuthData        []byte
	PCKChain          []byte // PEM, leaf first
	// Trailing is whatever followed the signature data: zero padding of quote buffers, or what
	// tooling appends (raw Open Enclave evidence is the quote followed by its custom claims). It
	// is signed by nothing and not used; claims about the enclave come only from the quote.
	Trailing []byte
}

// ParseQuote parses an SGX quote strictly: version 3, 4 or 5, an ECDSA P-256 attestation key,
// the SGX TEE type, Intel's QE vendor ID, certification data that carries the PEM PCK chain, and
// every length consistent. The quote ends where its own lengths say (signature data length, as
// for TDX): bytes after it are kept in Trailing and otherwise ignored. It checks no signature:
// attest/sgx does.
func ParseQuote(b []byte) (*Quote, error) {
	if len(b) > MaxQuoteSize {
		return nil, attest.Malformed("quote", "%d bytes, limit %d", len(b), MaxQuoteSize)
	}
	if len(b) < HeaderSize {
		return nil, attest.Malformed("quote.header", "quote is %d bytes, shorter than its %d-byte header", len(b), HeaderSize)
	}
	le := binary.LittleEndian
	q := &Quote{
		Version: le.Uint16(b[0:]),
		QESVN:   le.Uint16(b[8:]),
		PCESVN:  le.Uint16(b[10:]),
	}
	copy(q.QEVendorID[:], b[12:28])
	copy(q.UserData[:], b[28:48])
	if q.Version < 3 || q.Version > 5 {
		return nil, attest.Malformed("quote.header.version", "quote version %d is not supported (want 3, 4 or 5)", q.Version)
	}
	if ak := le.Uint16(b[2:]); ak != attestationKeyP256 {
		return nil, attest.Malformed("quote.header.attestation_key_type", "attestation key type %d is not ECDSA P-256 (2)", ak)
	}
	// Version 3 has a reserved zero word where versions 4 and 5 have the TEE type (0 for SGX).
	switch tee := le.Uint32(b[4:]); tee {
	case teeTypeSGX:
	case teeTypeTDX:
		return nil, attest.Malformed("quote.header.tee_type", "TEE type 0x81 is TDX, not SGX: verify it with --tee tdx")
	default:
		return nil, attest.Malformed("quote.header.tee_type", "TEE type %#x is not SGX (0)", tee)
	}
	if q.QEVendorID != IntelQEVendorID {
		return nil, attest.Malformed("quote.header.qe_vendor_id", "QE vendor %s is not Intel's", hex.EncodeToString(q.QEVendorID[:]))
	}
	off := HeaderSize
	if q.Version == 5 {
		if len(b) < off+v5DescSize {
			return nil, attest.Malformed("quote.body_descriptor", "v5 quote truncated before its body descriptor")
		}
		typ, size := le.Uint16(b[off:]), le.Uint32(b[off+2:])
		if typ != bodyTypeSGX {
			return nil, attest.Malformed("quote.body_type", "body type %d is not an SGX enclave report (1)", typ)
		}
		if size != ReportBodySize {
			return nil, attest.Malformed("quote.body_size", "body size %d, want %d", size, ReportBodySize)
		}
		off += v5DescSize
	}
	if len(b) < off+ReportBodySize+4 {
		return nil, attest.Malformed("quote.body", "quote truncated in its enclave report (%d bytes)", len(b))
	}
	body, err := ParseReportBody(b[off : off+ReportBodySize])
	if err != nil {
		return nil, attest.Malformed("quote.body", "%v", err)
	}
	q.Body = *body
	off += ReportBodySize
	q.Signed = b[:off]
	sigLen := int(le.Uint32(b[off:]))
	off += 4
	if sigLen > len(b)-off {
		return nil, attest.Malformed("quote.signature_data_len", "signature data length %d exceeds the %d bytes left", sigLen, len(b)-off)
	}
	// The quote ends with its signature data, by its own length, the same rule as TDX quotes
	// (and Intel's QVL). What follows (padding, Open Enclave custom claims) is unsigned: kept in
	// Trailing, never read into claims.
	q.Trailing = b[off+sigLen:]
	s := b[off : off+sigLen]
	if len(s) < sigKeySize {
		return nil, attest.Malformed("quote.signature_data", "signature data is %d bytes, too short for signature and attestation key", len(s))
	}
	q.Signature = s[:64]
	q.AttestationKey = s[64:128]
	s = s[128:]
	if q.Version >= 4 {
		// The QE report and what follows it are wrapped as certification data of type 6.
		inner, err := CertData(s, CertTypeQEReport, "quote.certification_data")
		if err != nil {
			return nil, err
		}
		s = inner
	}
	if err := q.ParseQEReportCertData(s); err != nil {
		return nil, err
	}
	return q, nil
}

// ParseQEReportCertData fills q from QE report certification data s: it parses the QE report, its signature, the QE authentication data and
// the PCK certification data: the whole of s.
func (q *Quote) ParseQEReportCertData(s []byte) error {
	var err error
	q.QEReport, q.QEReportSignature, q.QEAuthData, s, err = SplitQEReportCertData(s)
	if err != nil {
		return err
	}
	chain, err := CertData(s, CertTypePCKChain, "quote.pck_certification_data")
	if err != nil {
		return err
	}
	if len(chain) == 0 {
		return attest.Malformed("quote.pck_chain", "PCK certificate chain is empty")
	}
	q.PCKChain = chain
	return nil
}

// CertData parses certification data of type want that must fill s exactly, naming field in
// errors.
func CertData(s []byte, want uint16, field string) ([]byte, error) {
	if len(s) < certHeaderSize {
		return nil, attest.Malformed(field, "truncated before its type and size (%d bytes)", len(s))
	}
	typ, size := binary.LittleEndian.Uint16(s), int(binary.LittleEndian.Uint32(s[2:]))
	s = s[certHeaderSize:]
	if typ != want {
		return nil, attest.Malformed(field+".type", "certification data type %d, want %d", typ, want)
	}
	if size != len(s) {
		return nil, attest.Malformed(field+".size", "certification data size %d, but %d bytes follow", size, len(s))
	}
	return s, nil
}
