package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/medicus-cloud/trust/policies"
)

// reported turns errFailed (the report is already printed) into a quiet exit 1.
func reported(err error) error {
	if errors.Is(err, errFailed) {
		return &exitError{code: 1, err: err, quiet: true}
	}
	return err
}

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Write, test, explain, compare and sign measurement policies"}
	run := func(use, short string, args cobra.PositionalArgs, f func(cmd *cobra.Command, args []string) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: args, RunE: func(cmd *cobra.Command, a []string) error {
			return reported(f(cmd, a))
		}}
	}
	check := run("check FILE|DIR", "Parse a policy file or directory and summarize it", cobra.ExactArgs(1),
		func(cmd *cobra.Command, args []string) error {
			b, err := policies.Load(args[0])
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), policySummary(b))
			return nil
		})
	lint := run("lint FILE|DIR...", "Report schema, type, name and CEL errors with file:line:column", cobra.MinimumNArgs(1),
		func(cmd *cobra.Command, args []string) error { return policyLint(cmd.OutOrStdout(), args...) })
	test := run("test DIR", "Run the policy test cases (tests.yaml) of a bundle directory", cobra.ExactArgs(1),
		func(cmd *cobra.Command, args []string) error { return policyTest(cmd.OutOrStdout(), args[0]) })
	var claims string
	explain := run("explain --claims FILE FILE|DIR", "Show every check of the policy that decides, and why it allowed or denied", cobra.ExactArgs(1),
		func(cmd *cobra.Command, args []string) error {
			return policyExplain(cmd.OutOrStdout(), args[0], claims)
		})
	explain.Flags().StringVar(&claims, "claims", "", "claims as JSON (as trustctl evidence verify --format json prints them, or attest.Claims)")
	explain.MarkFlagRequired("claims")
	diff := run("diff OLD NEW", "Show which images gain or lose which grants", cobra.ExactArgs(2),
		func(cmd *cobra.Command, args []string) error {
			return policyDiff(cmd.OutOrStdout(), args[0], args[1])
		})
	var (
		keyFile string
		version uint64
	)
	sign := run("sign --key PEM --version N DIR", "Add your signature to a bundle directory (two people sign in turn)", cobra.ExactArgs(1),
		func(cmd *cobra.Command, args []string) error {
			pem, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			return policySign(cmd.OutOrStdout(), args[0], pem, version, rand.Reader)
		})
	sign.Flags().StringVar(&keyFile, "key", "", "your signing key (PEM, ECDSA P-256 or Ed25519)")
	sign.Flags().Uint64Var(&version, "version", 0, "bundle version (must grow with every rollout; 0 keeps the version of an existing bundle.json)")
	sign.MarkFlagRequired("key")
	var (
		trustFile string
		threshold int
	)
	verify := run("verify --keys PEM [--threshold M] DIR", "Check a signed bundle as trustd would load it", cobra.ExactArgs(1),
		func(cmd *cobra.Command, args []string) error {
			pem, err := os.ReadFile(trustFile)
			if err != nil {
				return err
			}
			_, err = policyVerify(cmd.OutOrStdout(), args[0], pem, threshold)
			return err
		})
	verify.Flags().StringVar(&trustFile, "keys", "", "the security team's public keys (PEM)")
	verify.Flags().IntVar(&threshold, "threshold", 0, "signatures required (0: all keys)")
	verify.MarkFlagRequired("keys")
	cmd.AddCommand(check, lint, test, explain, diff, sign, verify)
	cmd.AddCommand(newDryrunCmd())
	return cmd
}
