// Package azureabi holds the layouts of Azure confidential VM evidence that both sides need: the
// HCL report the paravisor writes into the vTPM NV index 0x01400001, the vTPM quote as carried in
// evidence, the report-data binding a quote carries (QualifyingData), and the JSON encodings of an
// evidence document (this project's own and the Confidential Containers attesters'). It imports
// no verifier, so the guest side (enclave/aztpm) does not link attest/snp or attest/tdx; package
// attest/azure verifies what these types hold.
package azureabi
