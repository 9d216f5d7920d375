// Package snp verifies AMD SEV-SNP attestation reports (Milan, Genoa, Turin) and maps them onto
// attest.Claims.
//
// It answers "is this report authentic and what does it say": the report's ECDSA P-384 signature
// by a VCEK or VLEK; that key's certificate chain up to AMD's root key (ARK) for the report's
// product line, through the ASK (VCEK) or ASVK (VLEK); the ARK-signed revocation list for that
// intermediate; and that the endorsement certificate was issued for this chip (CHIP_ID against the
// certificate's hwID) and this TCB (REPORTED_TCB against the certificate's SPL extensions). It does
// not decide whether a debug guest, a VMPL, a TCB level or a measurement is acceptable, nor whether
// REPORT_DATA carries the service's binding: package policies and the service do.
//
// Collateral comes, in order, from the evidence (the extended report's certificate table and
// attest.Evidence.Collateral), an offline collateral directory, an on-disk cache, and AMD's Key
// Distribution Service through an injected Getter. Chains are verified once per endorsement
// certificate and remembered for their validity window, so a warm verification costs about one
// ECDSA P-384 verification.
//
// The package deliberately does not import github.com/google/go-sev-guest/verify: that package
// registers a command-line flag on import and logs through a global logger. It uses the library's
// abi (report layout), kds (URLs, chain parsing) and embedded AMD root certificates only.
package snp
