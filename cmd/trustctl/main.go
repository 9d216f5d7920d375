// Command trustctl is the Medicus Trust command line: act as a simulated workload, manage the
// local keyring, check policies, verify evidence and audit logs offline.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		if e, ok := err.(*exitError); !ok || !e.quiet {
			fmt.Fprintln(os.Stderr, "trustctl:", err)
		}
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit code (for example 1 for "not verified" with no other error).
type exitError struct {
	code int
	err  error
	// quiet: the command already reported the failure on its output.
	quiet bool
}

func (e *exitError) Error() string { return e.err.Error() }

func exitCode(err error) int {
	if e, ok := err.(*exitError); ok {
		return e.code
	}
	return 1
}

type globals struct {
	addr string
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "trustctl",
		Short:         "Medicus Trust command line",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.addr, "addr", "127.0.0.1:7443", "trustd gRPC address")
	root.AddCommand(
		newAttestCmd(g),
		newKeysCmd(),
		newSecretsCmd(),
		newPolicyCmd(),
		newEvidenceCmd(),
		newCollateralCmd(g),
		newAuditCmd(),
		newAdminCmd(g),
		newStatusCmd(),
		newHealthCmd(g),
		newLoadtestCmd(g),
		newMeasureCmd(),
		newEventlogCmd(),
		newBreakGlassCmd(g),
		newConsentCmd(g),
		newRefValuesCmd(),
	)
	return root
}
