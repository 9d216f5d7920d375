// Package tdxquote is the binary layout of Intel TDX DCAP quotes (versions 4 and 5): parsing and
// encoding only, no signature, certificate or collateral check (attest/tdx verifies). It imports
// only package attest and sgxquote (the QE report inside a TD quote is an SGX report), so that
// guest code (enclave/tdxguest) can check the quotes it obtains without linking the verifier,
// the PCS fetcher or the collateral cache.
package tdxquote

import (
	"encoding/binary"
	"encoding/hex"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/sgx/sgxquote"
)

// Layout of Intel DCAP quotes (Intel TDX DCAP Quoting Library API, appendix "Quote format"):
//
//	v4: header (48) | TD report body (584)                               | sig data len (4) | sig data
//	v5: header (48) | body type (2) | body size (4) | body (584 or 648)  | sig data len (4) | sig data
//
// The attestation key signs everything before "sig data len". Signature data is the ECDSA
// signature (64), the attestation key (64) and certification data of type 6: the QE report
// (384), its signature by the PCK (64), QE authentication data (2-byte length and data) and
// certification data of type 5, the PEM PCK certificate chain.
const (
	headerSize     = 48
	tdReport10Size = 584
	tdReport15Size = 648
	v5DescSize     = 6
	sigHeaderSize  = 64 + 64
	certHeaderSize = 6

	// MaxQuoteSize bounds a quote; real ones are about 5 KiB.
	MaxQuoteSize = 64 << 10

	// TEETypeTDX is the header's TEE type of TDX quotes.
	TEETypeTDX         = 0x81
	attestationKeyP256 = 2
	certTypePCKChain   = 5
	certTypeQEReport   = 6
	bodyTypeTD10       = 2
	bodyTypeTD15       = 3
	bodyTypeSGXEnclave = 1
	// TDAttributeDebug and TDAttributeMigrate are TD_ATTRIBUTES bits: TUD.DEBUG and
	// SEC.MIGRATABLE.
	TDAttributeDebug    = 1 << 0
	TDAttributeMigrate  = 1 << 29
	tdAttributesSeptVE  = 1 << 28
	tdAttributesPerfmon = 1 << 63
)

// IntelQEVendorID is the QE vendor ID of Intel's quoting enclaves.
var IntelQEVendorID = sgxquote.IntelQEVendorID

// TDReport is the TD quote body: TDX 1.0 fields, and for a v5 TD 1.5 body TEE_TCB_SVN_2 and
// MRSERVICETD.
type TDReport struct {
	TEETCBSVN      [16]byte
	MRSEAM         [48]byte
	MRSIGNERSEAM   [48]byte
	SEAMAttributes [8]byte
	TDAttributes   [8]byte
	XFAM           [8]byte
	MRTD           [48]byte
	MRCONFIGID     [48]byte
	MROWNER        [48]byte
	MROWNERCONFIG  [48]byte
	RTMR           [4][48]byte
	ReportData     [64]byte
	// TD15 is set for a TD 1.5 body.
	TD15        bool
	TEETCBSVN2  [16]byte
	MRSERVICETD [48]byte
}

// Quote is a parsed TDX quote, version 4 or 5. Slices alias the bytes it was parsed from.
type Quote struct {
	Version  uint16
	BodyType uint16 // 2 (TD 1.0) or 3 (TD 1.5); v4 quotes are always 2
	// QESVN and PCESVN are header fields that only SGX quotes fill; TDX quotes carry the QE's
	// SVN in the QE report and the PCE's in the PCK certificate.
	QESVN      uint16
	PCESVN     uint16
	QEVendorID [16]byte
	UserData   [20]byte
	Body       TDReport

	// Signed is what the attestation key signed: header and body (with the v5 body descriptor).
	Signed            []byte
	Signature         []byte // r||s, 64 bytes
	AttestationKey    []byte // X||Y, 64 bytes
	QEReport          []byte // 384 bytes, signed by the PCK
	QEReportSignature []byte
	QEAuthData        []byte
	PCKChain          []byte // PEM
	// Trailing is whatever followed the signature data: unsigned, and not used.
	Trailing []byte
}

// ParseQuote parses a TDX quote strictly: version 4 or 5, ECDSA P-256 attestation key, TDX TEE
// type, a TD body, certification data type 6 wrapping type 5, and every length consistent. Bytes after
// the signature data are kept in Trailing and otherwise ignored. It checks no signature.
func ParseQuote(b []byte) (*Quote, error) {
	if len(b) > MaxQuoteSize {
		return nil, attest.Malformed("quote", "%d bytes, limit %d", len(b), MaxQuoteSize)
	}
	if len(b) < headerSize {
		return nil, attest.Malformed("quote.header", "quote is %d bytes, shorter than its %d-byte header", len(b), headerSize)
	}
	q := &Quote{
		Version: binary.LittleEndian.Uint16(b[0:]),
		QESVN:   binary.LittleEndian.Uint16(b[8:]),
		PCESVN:  binary.LittleEndian.Uint16(b[10:]),
	}
	copy(q.QEVendorID[:], b[12:28])
	copy(q.UserData[:], b[28:48])
	if q.Version != 4 && q.Version != 5 {
		return nil, attest.Malformed("quote.header.version", "quote version %d is not supported (want 4 or 5)", q.Version)
	}
	if ak := binary.LittleEndian.Uint16(b[2:]); ak != attestationKeyP256 {
		return nil, attest.Malformed("quote.header.attestation_key_type", "attestation key type %d is not ECDSA P-256 (2)", ak)
	}
	if tee := binary.LittleEndian.Uint32(b[4:]); tee != TEETypeTDX {
		return nil, attest.Malformed("quote.header.tee_type", "TEE type %#x is not TDX (0x81)", tee)
	}
	if q.QEVendorID != IntelQEVendorID {
		return nil, attest.Malformed("quote.header.qe_vendor_id", "QE vendor %s is not Intel's", hex.EncodeToString(q.QEVendorID[:]))
	}
	off := headerSize
	bodySize := tdReport10Size
	q.BodyType = bodyTypeTD10
	if q.Version == 5 {
		if len(b) < off+v5DescSize {
			return nil, attest.Malformed("quote.body_descriptor", "v5 quote truncated before its body descriptor")
		}
		q.BodyType = binary.LittleEndian.Uint16(b[off:])
		size := binary.LittleEndian.Uint32(b[off+2:])
		switch q.BodyType {
		case bodyTypeTD10:
			bodySize = tdReport10Size
		case bodyTypeTD15:
			bodySize = tdReport15Size
		case bodyTypeSGXEnclave:
			return nil, attest.Malformed("quote.body_type", "body type 1 is an SGX enclave report, not a TD report")
		default:
			return nil, attest.Malformed("quote.body_type", "unknown body type %d", q.BodyType)
		}
		if size != uint32(bodySize) {
			return nil, attest.Malformed("quote.body_size", "body size %d, want %d for body type %d", size, bodySize, q.BodyType)
		}
		off += v5DescSize
	}
	if len(b) < off+bodySize+4 {
		return nil, attest.Malformed("quote.body", "quote truncated in its TD report body (%d bytes)", len(b))
	}
	parseBody(&q.Body, b[off:off+bodySize])
	off += bodySize
	q.Signed = b[:off]
	sigLen := int(binary.LittleEndian.Uint32(b[off:]))
	off += 4
	if sigLen > len(b)-off {
		return nil, attest.Malformed("quote.signature_data_len", "signature data length %d exceeds the %d bytes left", sigLen, len(b)-off)
	}
	// Bytes after the signature data are signed by nothing and ignored, as Intel's and
	// go-tdx-guest's parsers do: quote buffers from the driver come padded, and some tooling
	// appends data.
	q.Trailing = b[off+sigLen:]
	if err := q.parseSignatureData(b[off : off+sigLen]); err != nil {
		return nil, err
	}
	return q, nil
}

func parseBody(r *TDReport, b []byte) {
	off := 0
	take := func(dst []byte) { off += copy(dst, b[off:]) }
	take(r.TEETCBSVN[:])
	take(r.MRSEAM[:])
	take(r.MRSIGNERSEAM[:])
	take(r.SEAMAttributes[:])
	take(r.TDAttributes[:])
	take(r.XFAM[:])
	take(r.MRTD[:])
	take(r.MRCONFIGID[:])
	take(r.MROWNER[:])
	take(r.MROWNERCONFIG[:])
	for i := range r.RTMR {
		take(r.RTMR[i][:])
	}
	take(r.ReportData[:])
	if len(b) == tdReport15Size {
		r.TD15 = true
		take(r.TEETCBSVN2[:])
		take(r.MRSERVICETD[:])
	}
}

// Bytes encodes the report as a quote body: 584 bytes, or 648 for a TD 1.5 report.
func (r *TDReport) Bytes() []byte {
	b := make([]byte, 0, tdReport15Size)
	for _, f := range [][]byte{r.TEETCBSVN[:], r.MRSEAM[:], r.MRSIGNERSEAM[:], r.SEAMAttributes[:],
		r.TDAttributes[:], r.XFAM[:], r.MRTD[:], r.MRCONFIGID[:], r.MROWNER[:], r.MROWNERCONFIG[:],
		r.RTMR[0][:], r.RTMR[1][:], r.RTMR[2][:], r.RTMR[3][:], r.ReportData[:]} {
		b = append(b, f...)
	}
	if r.TD15 {
		b = append(b, r.TEETCBSVN2[:]...)
		b = append(b, r.MRSERVICETD[:]...)
	}
	return b
}

func (q *Quote) parseSignatureData(s []byte) error {
	if len(s) < sigHeaderSize+certHeaderSize {
		return attest.Malformed("quote.signature_data", "signature data is %d bytes, too short for signature, key and certification data", len(s))
	}
	q.Signature = s[:64]
	q.AttestationKey = s[64:128]
	s = s[128:]
	typ, size := binary.LittleEndian.Uint16(s), int(binary.LittleEndian.Uint32(s[2:]))
	s = s[certHeaderSize:]
	if typ != certTypeQEReport {
		return attest.Malformed("quote.certification_data.type", "certification data type %d, want 6 (QE report certification data)", typ)
	}
	if size != len(s) {
		return attest.Malformed("quote.certification_data.size", "certification data size %d, but %d bytes follow", size, len(s))
	}
	var err error
	q.QEReport, q.QEReportSignature, q.QEAuthData, s, err = sgxquote.SplitQEReportCertData(s)
	if err != nil {
		return err
	}
	if len(s) < certHeaderSize {
		return attest.Malformed("quote.pck_certification_data", "PCK certification data truncated")
	}
	typ, size = binary.LittleEndian.Uint16(s), int(binary.LittleEndian.Uint32(s[2:]))
	s = s[certHeaderSize:]
	if typ != certTypePCKChain {
		return attest.Malformed("quote.pck_certification_data.type", "PCK certification data type %d, want 5 (PEM PCK certificate chain)", typ)
	}
	if size != len(s) {
		return attest.Malformed("quote.pck_certification_data.size", "PCK certification data size %d, but %d bytes follow", size, len(s))
	}
	if size == 0 {
		return attest.Malformed("quote.pck_chain", "PCK certificate chain is empty")
	}
	q.PCKChain = s
	return nil
}

// LooksRaw reports whether b starts like a raw TDX quote: a little-endian version 4 or 5 and
// the TDX TEE type.
func LooksRaw(b []byte) bool {
	return len(b) >= 8 && (b[0] == 4 || b[0] == 5) && b[1] == 0 && binary.LittleEndian.Uint32(b[4:]) == TEETypeTDX
}
