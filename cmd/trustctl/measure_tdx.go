package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newMeasureTDXCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "tdx --tdvf FILE [--kernel F --initrd F --cmdline S]",
		Short:  "Print the expected TDX MRTD and RTMR[1..2] (not yet implemented)",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("measure tdx is not implemented yet")
		},
	}
}
