package sgx

import "github.com/medicus-cloud/trust/attest/sgx/sgxquote"

// The quote layout lives in package sgxquote, which guest code imports without this verifier;
// these names keep the verifier's API.
const (
	headerSize = sgxquote.HeaderSize
	// ReportBodySize is the size of an SGX enclave report body.
	ReportBodySize = sgxquote.ReportBodySize
	// MaxQuoteSize bounds a quote.
	MaxQuoteSize = sgxquote.MaxQuoteSize
	// AttributeDebug is the DEBUG bit of an enclave's ATTRIBUTES.FLAGS.
	AttributeDebug = sgxquote.AttributeDebug
	// OEReportHeaderSize is the size of Open Enclave's report header.
	OEReportHeaderSize = sgxquote.OEReportHeaderSize

	certTypeQEReport = sgxquote.CertTypeQEReport
)

// IntelQEVendorID is the QE vendor ID of Intel's quoting enclaves.
var IntelQEVendorID = sgxquote.IntelQEVendorID

type (
	// ReportBody is an SGX enclave report body (sgxquote.ReportBody).
	ReportBody = sgxquote.ReportBody
	// Quote is a parsed SGX DCAP quote (sgxquote.Quote).
	Quote = sgxquote.Quote
)

// ParseQuote parses an SGX quote strictly; see sgxquote.ParseQuote.
func ParseQuote(b []byte) (*Quote, error) { return sgxquote.ParseQuote(b) }

// ParseReportBody parses a 384-byte SGX report body.
func ParseReportBody(b []byte) (*ReportBody, error) { return sgxquote.ParseReportBody(b) }

// QuoteFromOEReport returns the DCAP quote behind an Open Enclave remote report header; see
// sgxquote.QuoteFromOEReport.
func QuoteFromOEReport(b []byte) ([]byte, error) { return sgxquote.QuoteFromOEReport(b) }

func certData(s []byte, want uint16, field string) ([]byte, error) {
	return sgxquote.CertData(s, want, field)
}
