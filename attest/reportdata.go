package attest

import (
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
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

// A BindingChecker is a Verifier whose evidence carries the report-data binding other than as
// the 64 bytes of Claims.ReportData (a vTPM quote carries a hash of it, for instance). The
// service asks CheckBinding, which uses it when the verifier has it.
type BindingChecker interface {
	// CheckBinding returns an error naming the evidence field unless the verified claims c
	// commit to want.
	CheckBinding(c *Claims, want [ReportDataSize]byte) error
}

// ErrBinding is what CheckBinding's errors wrap when the evidence is not bound to the request.
var ErrBinding = errors.New("evidence is not bound to this request's nonce and workload key")

// CheckBinding reports whether the claims c that v verified are bound to want: by v's own
// CheckBinding if v is a BindingChecker, else by Claims.ReportData equal to want (compared in
// constant time). Errors wrap ErrBinding.
func CheckBinding(v Verifier, c *Claims, want [ReportDataSize]byte) error {
	if c == nil {
		return fmt.Errorf("%w: no claims", ErrBinding)
	}
	if bc, ok := v.(BindingChecker); ok {
		if err := bc.CheckBinding(c, want); err != nil {
			return fmt.Errorf("%w: %w", ErrBinding, err)
		}
		return nil
	}
	if subtle.ConstantTimeCompare(want[:], c.ReportData) != 1 {
		return fmt.Errorf("%w: report_data differs", ErrBinding)
	}
	return nil
}
