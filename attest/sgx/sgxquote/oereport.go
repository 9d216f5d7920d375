package sgxquote

import (
	"encoding/binary"

	"github.com/medicus-cloud/trust/attest"
)

// Open Enclave's legacy report header (oe_report_header_t): what EGo's GetRemoteReport and Open
// Enclave's oe_get_report put in front of the quote. It is signed by nothing.
const (
	// OEReportHeaderSize is the size of the header: version, report type (uint32 each) and
	// report size (uint64), little endian.
	OEReportHeaderSize = 16
	// OEReportVersion is the only header version.
	OEReportVersion     = 1
	oeReportTypeLocal   = 1
	oeReportTypeRemote  = 2
	maxOEReportFileSize = OEReportHeaderSize + MaxQuoteSize
)

// QuoteFromOEReport checks the Open Enclave report header of a remote report (version 1, type
// 2 "SGX remote", a size that matches what follows) and returns the DCAP quote behind it, which
// aliases b.
func QuoteFromOEReport(b []byte) ([]byte, error) {
	if len(b) > maxOEReportFileSize {
		return nil, attest.Malformed("oe_report", "%d bytes, limit %d", len(b), maxOEReportFileSize)
	}
	if len(b) < OEReportHeaderSize {
		return nil, attest.Malformed("oe_report.header", "%d bytes, shorter than its %d-byte header", len(b), OEReportHeaderSize)
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[0:]); v != OEReportVersion {
		return nil, attest.Malformed("oe_report.header.version", "header version %d, want %d", v, OEReportVersion)
	}
	switch typ := le.Uint32(b[4:]); typ {
	case oeReportTypeRemote:
	case oeReportTypeLocal:
		return nil, attest.Malformed("oe_report.header.report_type", "report type 1 is a local report, not a remote one with a quote")
	default:
		return nil, attest.Malformed("oe_report.header.report_type", "report type %d is not an SGX remote report (2)", typ)
	}
	size := le.Uint64(b[8:])
	if size != uint64(len(b)-OEReportHeaderSize) {
		return nil, attest.Malformed("oe_report.header.report_size", "header says %d quote bytes, %d follow", size, len(b)-OEReportHeaderSize)
	}
	if size == 0 {
		return nil, attest.Malformed("oe_report.header.report_size", "the report holds an empty quote")
	}
	return b[OEReportHeaderSize:], nil
}
