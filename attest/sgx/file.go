package sgx

import (
	"encoding/binary"

	"github.com/medicus-cloud/trust/attest"
)

// Open Enclave's legacy report header (oe_report_header_t): what EGo's GetRemoteReport and Open
// Enclave's oe_get_report put in front of the quote. It is signed by nothing.
const (
	// OEReportHeaderSize is the size of the header: version, report type (uint32 each) and
	// report size (uint64), little endian.
	OEReportHeaderSize  = 16
	oeReportVersion     = 1
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
	if v := le.Uint32(b[0:]); v != oeReportVersion {
		return nil, attest.Malformed("oe_report.header.version", "header version %d, want %d", v, oeReportVersion)
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

// EvidenceFromFile turns the contents of a quote file into evidence for Verify: a raw DCAP quote
// (what enclave/ego sends and DCAP tools write), or a remote report as EGo's GetRemoteReport or
// Open Enclave's oe_get_report return it, whose header is stripped. A raw quote cannot be
// mistaken for a header: its first four bytes are the version and key type (3..5, 2), never 1.
// It is what `trustctl evidence verify --tee sgx FILE` reads.
func EvidenceFromFile(b []byte) (*attest.Evidence, error) {
	if len(b) >= 4 && binary.LittleEndian.Uint32(b) == oeReportVersion {
		q, err := QuoteFromOEReport(b)
		if err != nil {
			return nil, err
		}
		b = q
	}
	if _, err := ParseQuote(b); err != nil {
		return nil, err
	}
	return &attest.Evidence{TEE: attest.SGX, Report: b}, nil
}
