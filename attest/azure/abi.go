package azure

import (
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure/azureabi"
)

// The encoding and layouts live in the leaf package azureabi, which the guest side
// (enclave/aztpm) imports without this verifier; these names keep them at hand here.

// The TEE types of Azure confidential VMs, whose evidence goes through the paravisor and vTPM.
const (
	SNP = azureabi.SNP
	TDX = azureabi.TDX
)

// Format and Version identify this package's own evidence document.
const (
	Format  = azureabi.Format
	Version = azureabi.Version
)

// MaxEvidenceSize bounds an encoded evidence document.
const MaxEvidenceSize = azureabi.MaxEvidenceSize

// MaxHCLReportSize bounds an HCL report.
const MaxHCLReportSize = azureabi.MaxHCLReportSize

// MaxPCR is the highest PCR index of a PC Client TPM.
const MaxPCR = azureabi.MaxPCR

type (
	// Evidence is Azure CVM evidence, decoded (azureabi.Evidence).
	Evidence = azureabi.Evidence
	// Quote is a vTPM quote (azureabi.Quote).
	Quote = azureabi.Quote
	// HCLReport is a parsed HCL report (azureabi.HCLReport).
	HCLReport = azureabi.HCLReport
)

// Decode reads evidence in any of the encodings azureabi.Decode reads.
func Decode(b []byte, tee attest.TEE) (*Evidence, error) { return azureabi.Decode(b, tee) }

// ParseHCLReport parses an HCL report (azureabi.ParseHCLReport).
func ParseHCLReport(b []byte) (*HCLReport, error) { return azureabi.ParseHCLReport(b) }

// QualifyingData is azureabi.QualifyingData: SHA-256 of the 64-byte report-data binding.
func QualifyingData(reportData [attest.ReportDataSize]byte) []byte {
	return azureabi.QualifyingData(reportData)
}

// RSASSASignature is azureabi.RSASSASignature.
func RSASSASignature(sig []byte) []byte { return azureabi.RSASSASignature(sig) }
