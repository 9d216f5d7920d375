package attest

import (
	"crypto/sha512"
	"encoding/binary"
)

// ReportDataLabel is the domain-separation label of the report data binding.
const ReportDataLabel = "medicus-trust/v1 report-data"

// ReportDataSize is the size of SNP REPORT_DATA, TDX REPORTDATA and SGX REPORTDATA.
const ReportDataSize = 64

// ReportData computes the value a workload binds into its TEE report: SHA-512 of the label, the
// nonce, the HPKE suite ID and the workload public key, each length-prefixed (uint32 big-endian).
// The verifier recomputes it from the request; any difference is a denial.
func ReportData(nonce, suiteID, publicKey []byte) [ReportDataSize]byte {
	h := sha512.New()
	for _, part := range [][]byte{[]byte(ReportDataLabel), nonce, suiteID, publicKey} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	var out [ReportDataSize]byte
	h.Sum(out[:0])
	return out
}
