package sgx

import (
	"encoding/binary"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/sgx/sgxquote"
)

// EvidenceFromFile turns the contents of a quote file into evidence for Verify: a raw DCAP quote
// (what enclave/ego sends and DCAP tools write), or a remote report as EGo's GetRemoteReport or
// Open Enclave's oe_get_report return it, whose header is stripped. A raw quote cannot be
// mistaken for a header: its first four bytes are the version and key type (3..5, 2), never 1.
// It is what `trustctl evidence verify --tee sgx FILE` reads.
func EvidenceFromFile(b []byte) (*attest.Evidence, error) {
	if len(b) >= 4 && binary.LittleEndian.Uint32(b) == sgxquote.OEReportVersion {
		q, err := sgxquote.QuoteFromOEReport(b)
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
