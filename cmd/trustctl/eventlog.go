package main

import "github.com/spf13/cobra"

func newEventlogCmd() *cobra.Command {
	return &cobra.Command{Use: "eventlog", Short: "Replay TDX CCEL and TPM event logs"}
}
