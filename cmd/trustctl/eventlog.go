package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/medicus-cloud/trust/attest/eventlog"
)

func newEventlogCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "eventlog", Short: "Replay TDX CCEL and TPM event logs"}
	var tee string
	replay := &cobra.Command{
		Use:   "replay --tee tdx|tpm FILE",
		Short: "Print the registers an event log produces, one NAME HEX line each",
		Long: `Replay an event log and print the registers it produces, lowercase hex, one "NAME HEX"
line each: RTMR0..RTMR3 for a TDX CCEL log (/sys/firmware/acpi/tables/data/CCEL), or sha1:N and
sha256:N for each PCR N that a TPM event log (binary_bios_measurements) extends, per bank it has.
Padding after the last event (0xFF or zero bytes) is ignored; anything else is an error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var regs []eventlog.Register
			switch tee {
			case "tdx":
				r, err := eventlog.ReplayTDX(raw)
				if err != nil {
					return err
				}
				regs = r.Registers()
			case "tpm":
				r, err := eventlog.ReplayTPM(raw)
				if err != nil {
					return err
				}
				regs = r.Registers()
			default:
				return fmt.Errorf("--tee: want tdx or tpm, got %q", tee)
			}
			for _, r := range regs {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", r.Name, r.Hex())
			}
			return nil
		},
	}
	replay.Flags().StringVar(&tee, "tee", "", "log kind: tdx (CCEL) or tpm (TCG PC Client)")
	replay.MarkFlagRequired("tee")
	cmd.AddCommand(replay)
	return cmd
}
