// Package intel holds the Intel endorsement machinery shared by the TDX and SGX DCAP verifiers:
// the PCK certificate chain and its SGX extensions, the collateral Intel's Provisioning
// Certification Service (PCS) or a PCCS serves (TCB info, QE identity, PCK and root CA CRLs),
// the checks of their signatures, chains and validity windows, and the TCB status evaluation of
// Intel's TCB info and enclave identity specifications.
//
// It does not parse quotes: attest/tdx and attest/sgx do, and pass the parts this package needs
// (the PCK chain, the QE report, TEE_TCB_SVN). QuoteVerifier is the half of their verification
// that does not depend on the TEE: the quote's signatures up to the PCK, and the collateral
// sources (offline directory, PCS with its cache, evidence) for them to choose among.
//
// Nothing here touches the network unless a Getter is called through Fetch or Source, and
// nothing logs.
package intel
