package tdx

import (
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/tdx/tdxquote"
)

// The quote layout lives in package tdxquote, which guest code imports without this verifier;
// these names keep the verifier's API.
const (
	// MaxQuoteSize bounds a quote.
	MaxQuoteSize = tdxquote.MaxQuoteSize

	tdAttributeDebug   = tdxquote.TDAttributeDebug
	tdAttributeMigrate = tdxquote.TDAttributeMigrate
)

// IntelQEVendorID is the QE vendor ID of Intel's quoting enclaves.
var IntelQEVendorID = tdxquote.IntelQEVendorID

type (
	// TDReport is the TD quote body (tdxquote.TDReport).
	TDReport = tdxquote.TDReport
	// Quote is a parsed TDX quote (tdxquote.Quote).
	Quote = tdxquote.Quote
)

// ParseQuote parses a TDX quote strictly; see tdxquote.ParseQuote.
func ParseQuote(b []byte) (*Quote, error) { return tdxquote.ParseQuote(b) }

// EvidenceFromFile reads a quote as tools save it: raw bytes, or the same as hex or base64 text
// (surrounding whitespace ignored).
func EvidenceFromFile(b []byte) (*attest.Evidence, error) {
	if len(b) > 4*MaxQuoteSize {
		return nil, attest.Malformed("quote", "file is %d bytes, limit %d", len(b), 4*MaxQuoteSize)
	}
	q := b
	if !tdxquote.LooksRaw(b) {
		t := strings.TrimSpace(string(b))
		if d, err := hex.DecodeString(t); err == nil && tdxquote.LooksRaw(d) {
			q = d
		} else if d, err := base64.StdEncoding.DecodeString(t); err == nil && tdxquote.LooksRaw(d) {
			q = d
		}
	}
	if _, err := ParseQuote(q); err != nil {
		return nil, err
	}
	return &attest.Evidence{TEE: attest.TDX, Report: q}, nil
}
