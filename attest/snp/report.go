package snp

import (
	"crypto/ecdsa"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"math/big"
	"strings"

	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"

	"github.com/medicus-cloud/trust/attest"
)

// ReportSize is the size of an SEV-SNP ATTESTATION_REPORT (all versions the SNP ABI defines).
const ReportSize = abi.ReportSize

// MaxCertTableSize bounds the certificate table of an extended report (hosts hand out a few
// pages; anything much larger is not a certificate table).
const MaxCertTableSize = 256 << 10

// maxCertTableEntries bounds the number of entries of a certificate table.
const maxCertTableEntries = 64

// Product lines, as AMD's KDS spells them.
const (
	Milan = "Milan"
	Genoa = "Genoa"
	Turin = "Turin"
)

// Signer kinds of the Platform "signer" claim.
const (
	SignerVCEK = "vcek"
	SignerVLEK = "vlek"
)

// Guest policy bits (SEV-SNP ABI, GUEST_POLICY).
const (
	policySMT       = 1 << 16 // guest policy: SMT allowed
	policyMigrateMA = 1 << 18
	policyDebug     = 1 << 19
)

// platformInfoSMTEn is PLATFORM_INFO bit 0: SMT is enabled on the platform.
const platformInfoSMTEn = 1 << 0

const signedLen = 0x2A0 // the signature covers bytes [0, 0x2A0)

// report is a parsed report plus what we derive from its raw form.
type report struct {
	raw     []byte
	pb      *spb.Report
	signer  abi.ReportSigner
	masked  bool   // MASK_CHIP_KEY: CHIP_ID is zero
	product string // from CPUID fields (version 3 and later), "" when unknown
}

// parseReport checks the layout of a raw report. It does not check the signature.
func parseReport(raw []byte) (*report, error) {
	if len(raw) < ReportSize {
		return nil, attest.Malformed("report", "truncated: %d bytes, an SEV-SNP report is %d", len(raw), ReportSize)
	}
	if len(raw) > ReportSize {
		return nil, attest.Malformed("report", "oversized: %d bytes, an SEV-SNP report is %d (certificate table belongs in certificates)", len(raw), ReportSize)
	}
	version := binary.LittleEndian.Uint32(raw[0:4])
	if version < abi.MinSupportedReportVersion || version > abi.MaxSupportedReportVersion {
		return nil, attest.Malformed("report.version", "%d, want %d..%d", version, abi.MinSupportedReportVersion, abi.MaxSupportedReportVersion)
	}
	if algo := abi.SignatureAlgo(raw); algo != abi.SignEcdsaP384Sha384 {
		return nil, attest.Malformed("report.signature_algo", "%d, want %d (ECDSA P-384 with SHA-384)", algo, abi.SignEcdsaP384Sha384)
	}
	if _, err := abi.ParseSnpPolicy(binary.LittleEndian.Uint64(raw[0x08:0x10])); err != nil {
		return nil, attest.Malformed("report.policy", "%v", err)
	}
	info, err := abi.ParseSignerInfo(binary.LittleEndian.Uint32(raw[0x48:0x4C]))
	if err != nil {
		return nil, attest.Malformed("report.signer_info", "%v", err)
	}
	pb, err := abi.ReportToProto(raw)
	if err != nil {
		return nil, attest.Malformed("report", "%v", err)
	}
	if pb.Vmpl > 3 {
		return nil, attest.Malformed("report.vmpl", "%d, want 0..3", pb.Vmpl)
	}
	r := &report{raw: raw, pb: pb, signer: info.SigningKey, masked: info.MaskChipKey}
	if version >= abi.ReportVersion3 {
		r.product = productOfCPUID(pb.Cpuid1EaxFms)
	}
	return r, nil
}

// productOfCPUID names the product line of a CPUID(1).EAX family/model, or "".
func productOfCPUID(eax uint32) string {
	if eax == 0 {
		return ""
	}
	switch p := abi.SevProductFromCpuid1Eax(eax); p.GetName() {
	case spb.SevProduct_SEV_PRODUCT_MILAN:
		return Milan
	case spb.SevProduct_SEV_PRODUCT_GENOA:
		return Genoa
	case spb.SevProduct_SEV_PRODUCT_TURIN:
		return Turin
	}
	return ""
}

// signatureValid reports whether the report's signature verifies under pub. R and S are
// little-endian 72-byte fields; the signed part is everything before the signature.
func (r *report) signatureValid(pub *ecdsa.PublicKey) bool {
	sig := r.raw[signedLen:]
	rr := new(big.Int).SetBytes(reversed(sig[0x00:0x48]))
	ss := new(big.Int).SetBytes(reversed(sig[0x48:0x90]))
	digest := sha512.Sum384(r.raw[:signedLen])
	return ecdsa.Verify(pub, digest[:], rr, ss)
}

func reversed(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[len(b)-1-i] = c
	}
	return out
}

// TCB is one decoded TCB_VERSION. Its layout depends on the product line: Milan and Genoa put
// the boot loader, TEE, SNP and microcode SPLs in bytes 0, 1, 6 and 7; Turin (family 1Ah) puts FMC,
// boot loader, TEE and SNP in bytes 0 to 3 and microcode in byte 7.
type TCB struct {
	FMC, Bootloader, TEE, SNP, Microcode uint8
	// HasFMC is true on Turin and later.
	HasFMC bool
}

// DecodeTCB splits a TCB_VERSION of the given product line into its components.
func DecodeTCB(v uint64, product string) TCB {
	b := func(i int) uint8 { return uint8(v >> (8 * i)) }
	if product == Turin {
		return TCB{FMC: b(0), Bootloader: b(1), TEE: b(2), SNP: b(3), Microcode: b(7), HasFMC: true}
	}
	return TCB{Bootloader: b(0), TEE: b(1), SNP: b(6), Microcode: b(7)}
}

// components lists the TCB's named parts in claim order.
func (t TCB) components() []tcbPart {
	parts := []tcbPart{{ClaimTCBBootloader, t.Bootloader}, {ClaimTCBTEE, t.TEE}, {ClaimTCBSNP, t.SNP}, {ClaimTCBMicrocode, t.Microcode}}
	if t.HasFMC {
		parts = append(parts, tcbPart{ClaimTCBFMC, t.FMC})
	}
	return parts
}

type tcbPart struct {
	name  string
	value uint8
}

// SplitFile splits the contents of a report file, as trustctl reads it, into the raw report and
// the certificate table that may follow it (the layout of an extended report as tools such as
// snpguest and go-sev-guest's attest write it). A file of exactly ReportSize bytes has no table.
// The table is checked to parse; its certificates are not verified here.
func SplitFile(b []byte) (report, certTable []byte, err error) {
	if len(b) < ReportSize {
		return nil, nil, attest.Malformed("report", "truncated: %d bytes, an SEV-SNP report is %d", len(b), ReportSize)
	}
	report, certTable = b[:ReportSize], b[ReportSize:]
	if len(certTable) == 0 {
		return report, nil, nil
	}
	if _, err := parseCertTable(certTable); err != nil {
		return nil, nil, err
	}
	return report, certTable, nil
}

// EvidenceFromFile turns the contents of a report file (a raw report, or a report followed by
// its certificate table, see SplitFile) into evidence for Verify. It is what
// `trustctl evidence verify --tee snp FILE` reads.
func EvidenceFromFile(b []byte) (*attest.Evidence, error) {
	report, table, err := SplitFile(b)
	if err != nil {
		return nil, err
	}
	return &attest.Evidence{TEE: attest.SEVSNP, Report: report, Certificates: table}, nil
}

// GUIDs of the certificate table (GHCB specification, MSG_REPORT_REQ extended request), in the
// byte order hosts write them.
var (
	guidVCEK = mustGUID(abi.VcekGUID)
	guidVLEK = mustGUID(abi.VlekGUID)
	guidASK  = mustGUID(abi.AskGUID)
	guidARK  = mustGUID(abi.ArkGUID)
)

func mustGUID(s string) [16]byte {
	var g [16]byte
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != len(g) {
		panic("snp: bad GUID constant " + s)
	}
	copy(g[:], b)
	return g
}

// canonicalGUID maps a known GUID written in Microsoft's mixed-endian layout (first three
// fields little-endian) to the RFC 4122 byte order the GHCB table normally uses, so tables from
// hosts that serialize GUIDs either way read the same.
func canonicalGUID(g [16]byte) [16]byte {
	m := g
	m[0], m[1], m[2], m[3] = g[3], g[2], g[1], g[0]
	m[4], m[5] = g[5], g[4]
	m[6], m[7] = g[7], g[6]
	for _, known := range [][16]byte{guidVCEK, guidVLEK, guidASK, guidARK} {
		if m == known {
			return m
		}
	}
	return g
}

// certTable maps GUIDs to the certificates of a parsed table.
type certTable map[[16]byte][]byte

// parseCertTable parses the GUID table of an extended report: 24-byte entries (GUID, offset,
// length, little-endian) ended by an all-zero entry, each pointing at a blob inside the table
// after the header. Duplicate GUIDs are an error: which of two VCEKs would we believe?
func parseCertTable(b []byte) (certTable, error) {
	if len(b) > MaxCertTableSize {
		return nil, attest.Malformed("certificates", "table is %d bytes, limit %d", len(b), MaxCertTableSize)
	}
	const entry = abi.CertTableEntrySize
	type span struct {
		guid     [16]byte
		off, len uint64
	}
	var spans []span
	for i := 0; ; i++ {
		if i >= maxCertTableEntries {
			return nil, attest.Malformed("certificates", "more than %d entries", maxCertTableEntries)
		}
		at := i * entry
		if at+entry > len(b) {
			return nil, attest.Malformed("certificates", "entry %d truncated (table is %d bytes, no terminating zero entry)", i, len(b))
		}
		e := b[at : at+entry]
		var s span
		copy(s.guid[:], e[:16])
		s.off = uint64(binary.LittleEndian.Uint32(e[16:20]))
		s.len = uint64(binary.LittleEndian.Uint32(e[20:24]))
		if s.guid == ([16]byte{}) && s.off == 0 && s.len == 0 {
			break
		}
		spans = append(spans, s)
	}
	header := uint64(len(spans)+1) * entry
	out := certTable{}
	for i, s := range spans {
		if s.off < header || s.off+s.len > uint64(len(b)) {
			return nil, attest.Malformed("certificates", "entry %d points at bytes [%d, %d) outside the table's data [%d, %d)", i, s.off, s.off+s.len, header, len(b))
		}
		s.guid = canonicalGUID(s.guid)
		if _, dup := out[s.guid]; dup {
			return nil, attest.Malformed("certificates", "entry %d repeats GUID %x", i, s.guid)
		}
		out[s.guid] = b[s.off : s.off+s.len]
	}
	return out, nil
}
