package azureabi

import (
	"crypto/sha256"

	"github.com/google/go-tpm/tpm2"

	"github.com/medicus-cloud/trust/attest"
)

// Quote is a vTPM quote: TPMS_ATTEST as the TPM signed it, its signature, and the values of the
// PCRs it covers (SHA-256 bank).
type Quote struct {
	// Attest is the marshalled TPMS_ATTEST (the contents of the TPM2B_ATTEST TPM2_Quote returns).
	Attest []byte
	// Signature is the marshalled TPMT_SIGNATURE.
	Signature []byte
	// PCRs are the SHA-256 PCR values by index. Either PCRs or PCRList is set.
	PCRs map[uint32][]byte
	// PCRList are the values of the selected PCRs in selection order (CoCo's encoding).
	PCRList [][]byte
}

// MaxPCR is the highest PCR index of a PC Client TPM.
const MaxPCR = 23

// CollateralTPMEventLog names the vTPM's TCG PC Client event log (the guest's
// /sys/kernel/security/tpm0/binary_bios_measurements) in attest.Evidence.Collateral.
const CollateralTPMEventLog = "tpm.eventlog"

// QualifyingData is what a workload passes to TPM2_Quote as qualifyingData: SHA-256 of the
// 64-byte report-data binding (attest.ReportData). A TPM accepts qualifying data only up to its
// largest digest, which is 48 bytes on TPMs without SHA-512, so the binding is hashed.
func QualifyingData(reportData [attest.ReportDataSize]byte) []byte {
	d := sha256.Sum256(reportData[:])
	return d[:]
}

// RSASSASignature wraps a raw RSASSA-PKCS1-v1_5 SHA-256 signature (as CoCo's evidence carries it)
// into a marshalled TPMT_SIGNATURE.
func RSASSASignature(sig []byte) []byte {
	return tpm2.Marshal(tpm2.TPMTSignature{
		SigAlg: tpm2.TPMAlgRSASSA,
		Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgRSASSA, &tpm2.TPMSSignatureRSA{
			Hash: tpm2.TPMAlgSHA256, Sig: tpm2.TPM2BPublicKeyRSA{Buffer: sig},
		}),
	})
}

// SelectedPCRs returns the indices of the PCRs a marshalled TPMS_ATTEST quote selects, in
// selection order (ascending, bank by bank). It checks no signature.
func SelectedPCRs(attestation []byte) ([]uint32, error) {
	a, err := tpm2.Unmarshal[tpm2.TPMSAttest](attestation)
	if err != nil {
		return nil, attest.Malformed("tpm_quote.message", "not a TPMS_ATTEST: %v", err)
	}
	q, err := a.Attested.Quote()
	if err != nil {
		return nil, attest.Malformed("tpm_quote.message.attested", "%v", err)
	}
	var out []uint32
	for _, s := range q.PCRSelect.PCRSelections {
		for i, byt := range s.PCRSelect {
			for bit := 0; bit < 8; bit++ {
				if byt&(1<<bit) != 0 {
					out = append(out, uint32(i*8+bit))
				}
			}
		}
	}
	return out, nil
}
