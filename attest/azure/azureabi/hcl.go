package azureabi

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"hash"

	"github.com/medicus-cloud/trust/attest"
)

// Layout of the HCL report, the attestation report that Azure's paravisor (the HCL) writes into
// the vTPM NV index 0x01400001 at boot (little-endian, as Microsoft's IGVM attestation request):
//
//	0     header (32): signature "HCLA", version, report_size, request_type, status, reserved[3]
//	32    hardware report (1184): the SNP ATTESTATION_REPORT, or the TDX TDREPORT (1024) padded
//	1216  IGVM request data (20): data_size, version, report_type, report_data_hash_type,
//	      variable_data_size
//	1236  variable data (variable_data_size bytes): the runtime data JSON
//
// The hardware report's REPORT_DATA starts with the hash (report_data_hash_type: 1 SHA-256,
// 2 SHA-384, 3 SHA-512) of the runtime data, so the runtime data, and the vTPM attestation key
// it names, are as authentic as the hardware report. The NV index is larger than the report
// (2600 bytes on current hosts); what follows the variable data is padding.
const (
	hclHeaderSize   = 32
	hwReportSize    = 1184 // the SNP report size, the largest hardware report
	snpReportSize   = 1184
	tdReportSize    = 1024
	igvmDataOffset  = hclHeaderSize + hwReportSize
	igvmDataSize    = 20
	varDataOffset   = igvmDataOffset + igvmDataSize
	hclSignature    = 0x414c4348 // "HCLA"
	requestTypeAK   = 2          // AK_CERT_REQUEST: the report made at boot for the vTPM AK
	ReportTypeSNP   = 2
	ReportTypeTDX   = 4
	hashTypeSHA256  = 1
	hashTypeSHA384  = 2
	hashTypeSHA512  = 3
	tdReportDataOff = 128 // REPORTDATA in TDREPORT_STRUCT (after the REPORTMACSTRUCT header)

	// MaxHCLReportSize bounds an HCL report (the NV index is 2600 bytes; runtime data is small).
	MaxHCLReportSize = 32 << 10
)

// HCLReport is a parsed HCL report. Slices alias the bytes it was parsed from.
type HCLReport struct {
	Version     uint32
	RequestType uint32
	// ReportType is 2 (SEV-SNP) or 4 (TDX).
	ReportType uint32
	// HashType names the hash of RuntimeData in REPORT_DATA: 1 SHA-256, 2 SHA-384, 3 SHA-512.
	HashType uint32
	// HWReport is the SNP report (1184 bytes) or the TD report (1024 bytes).
	HWReport []byte
	// RuntimeData is the variable data: the runtime data JSON.
	RuntimeData []byte
}

// ParseHCLReport parses an HCL report strictly: signature, report type, hash type and every
// length consistent. It checks no signature.
func ParseHCLReport(b []byte) (*HCLReport, error) {
	const field = "hcl_report"
	if len(b) > MaxHCLReportSize {
		return nil, attest.Malformed(field, "%d bytes, limit %d", len(b), MaxHCLReportSize)
	}
	if len(b) < varDataOffset {
		return nil, attest.Malformed(field, "truncated: %d bytes, want at least %d", len(b), varDataOffset)
	}
	le := binary.LittleEndian
	if sig := le.Uint32(b[0:]); sig != hclSignature {
		return nil, attest.Malformed(field+".signature", "%#08x, want %q", sig, "HCLA")
	}
	r := &HCLReport{Version: le.Uint32(b[4:]), RequestType: le.Uint32(b[12:])}
	if r.RequestType != requestTypeAK {
		return nil, attest.Malformed(field+".request_type", "%d, want %d (the boot-time AK report)", r.RequestType, requestTypeAK)
	}
	d := b[igvmDataOffset:]
	dataSize := le.Uint32(d[0:])
	r.ReportType = le.Uint32(d[8:])
	r.HashType = le.Uint32(d[12:])
	varSize := le.Uint32(d[16:])
	switch r.ReportType {
	case ReportTypeSNP:
		r.HWReport = b[hclHeaderSize : hclHeaderSize+snpReportSize]
	case ReportTypeTDX:
		r.HWReport = b[hclHeaderSize : hclHeaderSize+tdReportSize]
	default:
		return nil, attest.Malformed(field+".report_type", "%d, want %d (SEV-SNP) or %d (TDX)", r.ReportType, ReportTypeSNP, ReportTypeTDX)
	}
	if r.HashType < hashTypeSHA256 || r.HashType > hashTypeSHA512 {
		return nil, attest.Malformed(field+".report_data_hash_type", "%d, want 1, 2 or 3", r.HashType)
	}
	if uint64(varSize) > uint64(len(b)-varDataOffset) {
		return nil, attest.Malformed(field+".variable_data_size", "truncated: %d bytes of runtime data announced, %d present", varSize, len(b)-varDataOffset)
	}
	if uint64(dataSize) != uint64(varSize)+igvmDataSize {
		return nil, attest.Malformed(field+".data_size", "%d, want %d + %d", dataSize, igvmDataSize, varSize)
	}
	r.RuntimeData = b[varDataOffset : varDataOffset+int(varSize)]
	return r, nil
}

// newHash returns the hash the report names for the runtime data.
func (r *HCLReport) newHash() hash.Hash {
	switch r.HashType {
	case hashTypeSHA384:
		return sha512.New384()
	case hashTypeSHA512:
		return sha512.New()
	}
	return sha256.New()
}

// RuntimeDataDigest is the hash of the runtime data that REPORT_DATA must begin with.
func (r *HCLReport) RuntimeDataDigest() []byte {
	h := r.newHash()
	h.Write(r.RuntimeData)
	return h.Sum(nil)
}

// TDReportData is REPORTDATA of a TDX HCL report's TD report.
func (r *HCLReport) TDReportData() []byte {
	if r.ReportType != ReportTypeTDX {
		return nil
	}
	return r.HWReport[tdReportDataOff : tdReportDataOff+64]
}
