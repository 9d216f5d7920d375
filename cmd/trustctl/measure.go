package main

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/medicus-cloud/trust/measure/snp"
)

func newMeasureCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "measure",
		Short: "Compute expected TEE launch measurements from build artifacts",
	}
	cmd.AddCommand(newMeasureSNPCmd())
	cmd.AddCommand(newMeasureTDXCmd())
	return cmd
}

type snpMeasureFlags struct {
	mode, vcpuType, vcpuSig, vmmType, ovmf, kernel, initrd, appendLine string
	guestFeatures, ovmfHash, svsm, varsFile, outputFormat              string
	vcpus, family, model, stepping                                     int
	varsSize                                                           uint64
}

func newMeasureSNPCmd() *cobra.Command {
	var f snpMeasureFlags
	c := &cobra.Command{
		Use:   "snp --ovmf FILE --vcpus N [--vcpu-type T] [--kernel F [--initrd F] [--append S]] ...",
		Short: "Print the SEV-SNP launch MEASUREMENT (options as sev-snp-measure's)",
		Long: `Print the launch digest AMD's SEV-SNP firmware computes for a guest: the OVMF pages, the
sections its SEV metadata declares, the SEV hashes table of a measured direct boot, one VMSA
per vCPU. Options and their meanings are those of sev-snp-measure; so is the output.

--mode snp:ovmf-hash prints the digest of the OVMF pages alone, to pass later as --snp-ovmf-hash.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := measureSNP(&f)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out)
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.mode, "mode", "snp", "snp, snp:ovmf-hash or snp:svsm")
	fl.IntVar(&f.vcpus, "vcpus", 0, "number of guest vCPUs")
	fl.StringVar(&f.vcpuType, "vcpu-type", "", "guest vCPU type (QEMU model name, e.g. EPYC-v4, EPYC-Milan, EPYC-Genoa)")
	fl.StringVar(&f.vcpuSig, "vcpu-sig", "", "guest vCPU signature value")
	fl.IntVar(&f.family, "vcpu-family", 0, "guest vCPU family")
	fl.IntVar(&f.model, "vcpu-model", 0, "guest vCPU model")
	fl.IntVar(&f.stepping, "vcpu-stepping", 0, "guest vCPU stepping")
	fl.StringVar(&f.vmmType, "vmm-type", "QEMU", "VMM: QEMU, ec2 or gce")
	fl.StringVar(&f.ovmf, "ovmf", "", "OVMF firmware image")
	fl.StringVar(&f.kernel, "kernel", "", "kernel for measured direct boot")
	fl.StringVar(&f.initrd, "initrd", "", "initrd (with --kernel)")
	fl.StringVar(&f.appendLine, "append", "", "kernel command line (with --kernel)")
	fl.StringVar(&f.guestFeatures, "guest-features", "0x1", "VMSA SEV_FEATURES value")
	fl.StringVar(&f.ovmfHash, "snp-ovmf-hash", "", "precomputed OVMF hash (hex), from --mode snp:ovmf-hash")
	fl.StringVar(&f.svsm, "svsm", "", "snp:svsm: SVSM image")
	fl.Uint64Var(&f.varsSize, "vars-size", 0, "snp:svsm: size of the OVMF_VARS file in bytes")
	fl.StringVar(&f.varsFile, "vars-file", "", "snp:svsm: OVMF_VARS file (instead of --vars-size)")
	fl.StringVar(&f.outputFormat, "output-format", "hex", "hex or base64")
	c.MarkFlagRequired("ovmf")
	return c
}

func measureSNP(f *snpMeasureFlags) (string, error) {
	if f.outputFormat != "hex" && f.outputFormat != "base64" {
		return "", fmt.Errorf("--output-format: want hex or base64, got %q", f.outputFormat)
	}
	raw, err := os.ReadFile(f.ovmf)
	if err != nil {
		return "", fmt.Errorf("--ovmf: %w", err)
	}
	fw, err := snp.ParseOVMF(raw)
	if err != nil {
		return "", fmt.Errorf("--ovmf: %w", err)
	}
	var digest [snp.DigestSize]byte
	switch f.mode {
	case "snp:ovmf-hash":
		digest, err = snp.OVMFHash(fw)
	case "snp", "snp:svsm":
		digest, err = measureSNPGuest(f, fw)
	default:
		return "", fmt.Errorf("--mode: want snp, snp:ovmf-hash or snp:svsm, got %q", f.mode)
	}
	if err != nil {
		return "", err
	}
	if f.outputFormat == "base64" {
		return base64.StdEncoding.EncodeToString(digest[:]), nil
	}
	return hex.EncodeToString(digest[:]), nil
}

func measureSNPGuest(f *snpMeasureFlags, fw *snp.Firmware) ([snp.DigestSize]byte, error) {
	var zero [snp.DigestSize]byte
	if f.kernel == "" && (f.initrd != "" || f.appendLine != "") {
		return zero, errors.New("--initrd and --append need --kernel")
	}
	if f.vcpus < 1 {
		return zero, fmt.Errorf("missing --vcpus N in guest mode %q", f.mode)
	}
	vmm, err := snp.ParseVMMType(f.vmmType)
	if err != nil {
		return zero, fmt.Errorf("--vmm-type: %w", err)
	}
	sig, err := snpVCPUSig(f, vmm)
	if err != nil {
		return zero, err
	}
	if f.mode == "snp:svsm" {
		if vmm != snp.VMMQEMU {
			return zero, errors.New("snp:svsm mode is only defined for --vmm-type QEMU")
		}
		if f.svsm == "" {
			return zero, errors.New("snp:svsm mode needs --svsm")
		}
		size := f.varsSize
		if f.varsFile != "" {
			st, err := os.Stat(f.varsFile)
			if err != nil {
				return zero, fmt.Errorf("--vars-file: %w", err)
			}
			size = uint64(st.Size())
		}
		if size == 0 {
			return zero, errors.New("snp:svsm mode needs --vars-size or --vars-file")
		}
		img, err := os.ReadFile(f.svsm)
		if err != nil {
			return zero, fmt.Errorf("--svsm: %w", err)
		}
		return snp.SVSMLaunchDigest(fw, img, size, f.vcpus, sig)
	}
	features, err := strconv.ParseUint(f.guestFeatures, 0, 64)
	if err != nil {
		return zero, fmt.Errorf("--guest-features: %w", err)
	}
	p := snp.Params{VCPUs: f.vcpus, VCPUSig: sig, GuestFeatures: features, VMM: vmm}
	if f.ovmfHash != "" {
		if p.OVMFHash, err = hex.DecodeString(f.ovmfHash); err != nil {
			return zero, fmt.Errorf("--snp-ovmf-hash: %w", err)
		}
	}
	if f.kernel != "" {
		b := &snp.DirectBoot{Cmdline: f.appendLine}
		if b.Kernel, err = os.ReadFile(f.kernel); err != nil {
			return zero, fmt.Errorf("--kernel: %w", err)
		}
		if f.initrd != "" {
			if b.Initrd, err = os.ReadFile(f.initrd); err != nil {
				return zero, fmt.Errorf("--initrd: %w", err)
			}
		}
		p.Boot = b
	}
	return snp.LaunchDigest(fw, p)
}

// snpVCPUSig picks the vCPU signature as sev-snp-measure does: family/model/stepping, then
// --vcpu-sig, then --vcpu-type; QEMU needs one of them (EC2 and GCE put a constant in RDX).
func snpVCPUSig(f *snpMeasureFlags, vmm snp.VMMType) (uint32, error) {
	switch {
	case f.family != 0:
		return snp.CPUSig(f.family, f.model, f.stepping), nil
	case f.vcpuSig != "":
		v, err := strconv.ParseUint(f.vcpuSig, 0, 32)
		if err != nil {
			return 0, fmt.Errorf("--vcpu-sig: %w", err)
		}
		return uint32(v), nil
	case f.vcpuType != "":
		v, ok := snp.VCPUTypes[f.vcpuType]
		if !ok {
			return 0, fmt.Errorf("--vcpu-type: unknown vCPU type %q", f.vcpuType)
		}
		return v, nil
	case vmm == snp.VMMQEMU:
		return 0, fmt.Errorf("missing --vcpu-type or --vcpu-sig or --vcpu-family in guest mode %q", f.mode)
	}
	return 0, nil
}
