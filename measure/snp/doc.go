// Package snp computes the AMD SEV-SNP launch MEASUREMENT of a guest from its build artifacts, as
// the SEV-SNP Firmware ABI specification defines the launch digest (SNP_LAUNCH_UPDATE, PAGE_INFO):
// the OVMF firmware pages, the sections that OVMF's SEV metadata declares (zero, secrets, CPUID,
// SVSM CAA and kernel-hashes pages), the SEV hashes table of a measured direct boot (kernel,
// initrd, command line) and one VMSA per vCPU.
//
// The inputs and their meanings follow the sev-snp-measure tool (modes snp, snp:ovmf-hash and
// snp:svsm; VMM types QEMU, ec2 and gce) so that a digest computed here equals the one that tool
// prints for the same inputs, including its current EC2 register state (RDX 0x600, adopted
// upstream in 2026 to match live EC2 measurements).
//
// The package parses outside input (firmware images); it never panics on a malformed one.
package snp
