package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/medicus-cloud/trust/measure/tdx"
)

func newMeasureTDXCmd() *cobra.Command {
	var tdvfFile, kernel, initrd, cmdline, order string
	c := &cobra.Command{
		Use:   "tdx --tdvf FILE [--kernel F [--initrd F] [--cmdline S]] [--page-order single|two-pass]",
		Short: "Print the expected TDX MRTD and, for a direct boot, RTMR1 and RTMR2",
		Long: `Print MRTD as the TDX module computes it while the VMM adds the TDVF image's sections
(TDH.MEM.PAGE.ADD, TDH.MR.EXTEND) and, with --kernel, RTMR1 (the kernel's Authenticode digest
between TDVF's boot actions) and RTMR2 (the command line and initrd the Linux EFI stub measures),
one "NAME HEX" line each.

--page-order two-pass reproduces VMMs that add all of a section's pages before extending them;
the default single-pass is current KVM. With an initrd, OVMF's kernel loader prepends
"initrd=initrd " to the command line and so does this command. --kernel must be the image as
the firmware loads it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var po tdx.PageOrder
			switch order {
			case "single":
			case "two-pass":
				po = tdx.TwoPass
			default:
				return fmt.Errorf("--page-order: want single or two-pass, got %q", order)
			}
			if kernel == "" && (initrd != "" || cmdline != "") {
				return errors.New("--initrd and --cmdline need --kernel")
			}
			img, err := os.ReadFile(tdvfFile)
			if err != nil {
				return fmt.Errorf("--tdvf: %w", err)
			}
			tv, err := tdx.ParseTDVF(img)
			if err != nil {
				return fmt.Errorf("--tdvf: %w", err)
			}
			mrtd := tv.MRTD(po)
			out := cmd.OutOrStdout()
			if kernel == "" {
				fmt.Fprintf(out, "MRTD %s\n", hex.EncodeToString(mrtd[:]))
				return nil
			}
			k, err := os.ReadFile(kernel)
			if err != nil {
				return fmt.Errorf("--kernel: %w", err)
			}
			ac, err := tdx.Authenticode(k)
			if err != nil {
				return fmt.Errorf("--kernel: %w", err)
			}
			var rd []byte
			if initrd != "" {
				if rd, err = os.ReadFile(initrd); err != nil {
					return fmt.Errorf("--initrd: %w", err)
				}
			}
			r1 := tdx.RTMR1(ac[:])
			r2 := tdx.RTMR2(tdx.DirectBootCmdline(cmdline, initrd != ""), rd)
			fmt.Fprintf(out, "MRTD %s\nRTMR1 %s\nRTMR2 %s\n", hex.EncodeToString(mrtd[:]), hex.EncodeToString(r1[:]), hex.EncodeToString(r2[:]))
			return nil
		},
	}
	c.Flags().StringVar(&tdvfFile, "tdvf", "", "TDVF (OVMF for TDX) firmware image")
	c.Flags().StringVar(&kernel, "kernel", "", "kernel (PE/EFI stub) for a direct boot")
	c.Flags().StringVar(&initrd, "initrd", "", "initrd (with --kernel)")
	c.Flags().StringVar(&cmdline, "cmdline", "", "kernel command line (with --kernel)")
	c.Flags().StringVar(&order, "page-order", "single", "single or two-pass")
	c.MarkFlagRequired("tdvf")
	return c
}
