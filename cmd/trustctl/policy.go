package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/medicus-cloud/trust/policies"
)

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Write, check and sign measurement policies"}
	cmd.AddCommand(&cobra.Command{
		Use: "check FILE|DIR", Short: "Parse and check a policy file or directory", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := policies.Load(args[0])
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), b.Summary())
			return nil
		},
	})
	return cmd
}
