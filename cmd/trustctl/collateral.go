package main

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/medicus-cloud/trust/collateral"
	"github.com/medicus-cloud/trust/policies"
)

// addCollateralBundleCmds adds the air-gapped-site commands (issue 16) to `trustctl collateral`.
func addCollateralBundleCmds(cmd *cobra.Command) {
	var (
		keyFile, out, issuedAt string
		intelDirs, snpDirs     []string
	)
	bundle := &cobra.Command{
		Use:   "bundle --key PEM --out FILE [--intel DIR]... [--snp DIR]... [--issued TIME]",
		Short: "Sign one collateral bundle for air-gapped trustd sites: Intel collateral of several FMSPCs and AMD collateral of several chips",
		Long: `Write one COSE_Sign1 file, signed by an operator key (ECDSA P-256 or Ed25519, PEM), that holds
the Intel collateral of every --intel directory (written by 'trustctl collateral fetch', one FMSPC
each, TDX or SGX as its TCB info says) and the AMD collateral of every --snp directory (the
vcek/PRODUCT/HWID-TCB.der and crl/PRODUCT-vcek|vlek.der layout of trustd's SEV-SNP cache).
trustd imports it with collateral_bundle: {file, keys_file} and refuses a bundle issued before
the one it imported last.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(intelDirs)+len(snpDirs) == 0 {
				return fmt.Errorf("give at least one --intel or --snp directory")
			}
			pem, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			key, err := policies.ParseSigningKey(pem)
			if err != nil {
				return err
			}
			b := &collateral.Bundle{Issued: time.Now().UTC().Truncate(time.Second)}
			if issuedAt != "" {
				if b.Issued, err = time.Parse(time.RFC3339, issuedAt); err != nil {
					return fmt.Errorf("--issued: %v", err)
				}
			}
			for _, d := range intelDirs {
				if err := b.AddIntelDir(d); err != nil {
					return err
				}
			}
			for _, d := range snpDirs {
				if err := b.AddSNPDir(d); err != nil {
					return err
				}
			}
			data, err := collateral.Sign(b, key)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, data, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", out)
			return printBundle(cmd.OutOrStdout(), b, "", time.Time{})
		},
	}
	bundle.Flags().StringVar(&keyFile, "key", "", "operator signing key (PEM, ECDSA P-256 or Ed25519)")
	bundle.Flags().StringVar(&out, "out", "", "bundle file to write")
	bundle.Flags().StringArrayVar(&intelDirs, "intel", nil, "Intel collateral directory (repeatable)")
	bundle.Flags().StringArrayVar(&snpDirs, "snp", nil, "SEV-SNP collateral directory (repeatable)")
	bundle.Flags().StringVar(&issuedAt, "issued", "", "issue time, RFC 3339 (default now)")
	bundle.MarkFlagRequired("key")
	bundle.MarkFlagRequired("out")

	var keysFile, at string
	show := &cobra.Command{
		Use:   "show FILE --keys PEM [--at TIME]",
		Short: "Verify a collateral bundle under the operator keys and list what it holds and its age",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pem, err := os.ReadFile(keysFile)
			if err != nil {
				return err
			}
			keys, err := policies.ParseTrustKeys(pem)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			b, kid, err := collateral.Open(data, keys)
			if err != nil {
				return err
			}
			now := time.Now()
			if at != "" {
				if now, err = time.Parse(time.RFC3339, at); err != nil {
					return fmt.Errorf("--at: %v", err)
				}
			}
			return printBundle(cmd.OutOrStdout(), b, kid, now)
		},
	}
	show.Flags().StringVar(&keysFile, "keys", "", "operator public keys (PEM PUBLIC KEY blocks)")
	show.Flags().StringVar(&at, "at", "", "report the age at this time, RFC 3339 (default now)")
	show.MarkFlagRequired("keys")
	cmd.AddCommand(bundle, show, newCollateralDiffCmd())
}

func printBundle(w io.Writer, b *collateral.Bundle, kid string, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "issued\t%s\n", b.Issued.UTC().Format(time.RFC3339))
	if !now.IsZero() {
		fmt.Fprintf(tw, "age\t%s\n", now.Sub(b.Issued).Round(time.Second))
	}
	if kid != "" {
		fmt.Fprintf(tw, "signed by\t%s\n", kid)
	}
	fmt.Fprintln(tw, "TEE\tPLATFORM\tFILES")
	for _, it := range b.Items() {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", it.TEE, it.Platform, it.Files)
	}
	return tw.Flush()
}
