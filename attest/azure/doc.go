// Package azure verifies the evidence of Azure confidential VMs, SEV-SNP and TDX, which run a
// paravisor (Azure's HCL) and attest through the vTPM.
//
// On these VMs the guest has no SEV-SNP or TDX guest device. At boot the paravisor obtains the
// hardware report (an SEV-SNP report, or a TD report that Azure's quoting service turns into a TD
// quote) with REPORT_DATA committing to its runtime data, a JSON document holding the public key
// of the vTPM attestation key (AK, JWK kid "HCLAkPub"), and stores both as the HCL report in the
// vTPM NV index 0x01400001. The workload's binding goes through a TPM2_Quote that this AK signs,
// and the image is measured into the vTPM PCRs; the launch measurement is the paravisor's.
//
// Verification, each failure an attest.Error naming its field:
//
//   - hcl_report: the HCL report parses (ParseHCLReport); its SEV-SNP report is authentic under
//     attest/snp (VCEK chain, CRL, TCB; field "hcl_report.<snp field>") and was made at VMPL0, or
//     the TD quote is authentic under attest/tdx ("td_quote.<tdx field>") and the HCL's TD report
//     has the quote's REPORTDATA and MRTD;
//   - runtime_data: REPORT_DATA begins with the hash of the runtime data (SHA-256 for the
//     hash type Azure uses, 1) and the runtime data names the AK;
//   - tpm_quote.signature: the AK signed the TPMS_ATTEST (RSASSA; parsed with go-tpm's tpm2);
//   - tpm_quote.pcrs, tpm_quote.pcr_digest: the PCR values are those of the quote's selection
//     (the SHA-256 bank) and hash to its PCR digest;
//   - tpm_quote.extra_data (CheckBinding): the quote's qualifying data is
//     QualifyingData(attest.ReportData(nonce, suite, key)), that is SHA-256 of the 64-byte
//     binding, since a TPM accepts qualifying data no longer than its largest digest.
//
// Claims: the SNP or TDX verifier's, marked as the paravisor's (Platform "paravisor" =
// "azure-hcl", "measurement_of" = "paravisor"; Measurement is the paravisor's launch
// measurement), TEE "azure-snp" or "azure-tdx", the quoted PCRs as Measurements "pcr0".."pcr23"
// (SHA-256), Config "vtpm_ak_sha256" (SHA-256 of the AK's PKIX DER), "hcl_report_data" (the
// hardware REPORT_DATA) and "hcl_user_data", and ReportData = the quote's qualifying data.
//
// # Scheme
//
// SNPScheme and TDXScheme make these the TEE types "azure-snp" and "azure-tdx" for trustd
// (configuration sections of the same names, taking the snp and tdx options), trustctl evidence
// verify and policies (which may pin PCRs: spec.require.pcrs). Their verifiers implement
// attest.BindingChecker, so trustd compares the binding as this package says.
//
// # Evidence encodings
//
// Decode reads three JSON encodings (the types and the decoder are in the leaf package
// azureabi, which the guest side shares). This package's own, written by Evidence.Encode and by the
// guest provider enclave/aztpm ([]byte fields in standard base64, PCR values in hex):
//
//	{
//	  "format": "medicus-trust/azure-vtpm",
//	  "version": 1,
//	  "tee": "azure-snp" | "azure-tdx",
//	  "hcl_report": "<NV index 0x01400001>",
//	  "tpm_quote": {
//	    "attest": "<TPMS_ATTEST>",
//	    "signature": "<TPMT_SIGNATURE>",
//	    "pcrs": {"0": "<sha256 hex>", ...}
//	  },
//	  "vcek": "<DER, optional>",
//	  "certificates": "<SNP certificate table, optional>",
//	  "td_quote": "<TDX only>"
//	}
//
// and the two forms of the Confidential Containers guest components' az-snp-vtpm and
// az-tdx-vtpm attesters: version 1 ("version": 1, "tpm_quote" {"signature", "message", "pcrs"}
// in hex, the signature a raw RSASSA SHA-256 one and the PCRs in selection order, "hcl_report"
// and "td_quote" in base64url, "vcek" in base64 DER) and the unversioned first form (SNP:
// "quote" and "report" as byte arrays and "vcek" in PEM; TDX: "tpm_quote", "hcl_report" and
// "td_quote" as byte arrays).
package azure
