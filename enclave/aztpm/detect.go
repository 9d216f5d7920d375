package aztpm

import (
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/medicus-cloud/trust/attest/azure/azureabi"
	"github.com/medicus-cloud/trust/enclave"
)

// Detector finds an Azure confidential VM (for enclave/detect, which tries it first: such a
// VM may show the sev_snp or tdx_guest CPU flag but has no SEV-SNP or TDX guest device): the
// vTPM DefaultDevice is present and its NV index HCLReportIndex holds an HCL report. Other
// machines with a TPM (GCP's confidential VMs have one) are not detected.
var Detector = NewDetector(func() (transport.TPMCloser, error) { return OpenDevice("") })

// NewDetector is Detector with open in place of opening DefaultDevice (tests pass a TPM
// simulator). The provider it returns keeps the TPM open, fetches the VCEK or TD quote from
// Azure's IMDS, and sends the kernel's event log along (ReadEventLog).
func NewDetector(open func() (transport.TPMCloser, error)) enclave.Detector {
	return enclave.Detector{
		What: "an Azure confidential VM (" + DefaultDevice + " with an HCL report in NV index 0x01400001)",
		Detect: func(m enclave.Machine) (enclave.Provider, error) {
			if !m.Exists(DefaultDevice) {
				return nil, nil
			}
			tpm, err := open()
			if err != nil {
				// A TPM this process cannot use is no Azure vTPM it could attest with; the
				// next detector may still find the TEE.
				return nil, nil
			}
			b, err := ReadNV(tpm, HCLReportIndex)
			if err != nil {
				tpm.Close()
				return nil, nil
			}
			if _, err := azureabi.ParseHCLReport(b); err != nil {
				tpm.Close()
				return nil, nil
			}
			imds := &IMDSClient{}
			return &Provider{TPM: tpm, VCEK: imds.VCEK, TDQuote: imds.TDQuote, EventLog: ReadEventLog}, nil
		},
	}
}
