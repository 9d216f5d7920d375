package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/medicus-cloud/trust/collateral"
	"github.com/medicus-cloud/trust/policies"
)

// newCollateralDiffCmd is `trustctl collateral diff`: the TCB recovery preview (issue 16).
func newCollateralDiffCmd() *cobra.Command {
	af := &auditFlags{}
	var (
		opKeys, at, format string
		days               int
	)
	cmd := &cobra.Command{
		Use:   "diff NEW --log LOG [--key KEY] [--days N] [--operator-keys PEM] [--at TIME] [--format text|json]",
		Short: "Preview new collateral: which platforms and images seen in the audit log would change TCB status",
		Long: `diff reads and verifies the audit log, appraises every attestation trustd accepted during the
last --days days again against NEW, and lists each platform (TDX FMSPC, SEV-SNP chip) and image
whose TCB status would change: for example UpToDate to OutOfDate after an Intel TCB recovery, or
a chip refused after AMD revokes its ASK. NEW is a collateral bundle (verified with
--operator-keys) or a collateral directory ('trustctl collateral fetch', or an SEV-SNP directory).
The status recorded in the log stands for the active set. TDX records need the
sgx_tcb_components claim (recorded from this version on); older records are counted as not
appraisable.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := af.source(cmd)
			if err != nil {
				return err
			}
			now := time.Now()
			if at != "" {
				if now, err = time.Parse(time.RFC3339, at); err != nil {
					return fmt.Errorf("--at: %v", err)
				}
			}
			if days <= 0 {
				return fmt.Errorf("--days must be at least 1")
			}
			b, err := loadNewCollateral(args[0], opKeys)
			if err != nil {
				return err
			}
			rep, err := collateral.Diff(cmd.Context(), collateral.DiffOptions{Source: src, New: b, Now: now,
				Since: now.Add(-time.Duration(days) * 24 * time.Hour)})
			if err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			return rep.Write(cmd.OutOrStdout())
		},
	}
	af.register(cmd)
	cmd.Flags().IntVar(&days, "days", 30, "appraise attestations of the last N days")
	cmd.Flags().StringVar(&opKeys, "operator-keys", "", "operator public keys (PEM) that sign collateral bundles")
	cmd.Flags().StringVar(&at, "at", "", "appraise as of this time, RFC 3339 (default now)")
	cmd.Flags().StringVar(&format, "format", "text", "text or json")
	return cmd
}

// loadNewCollateral reads a signed bundle, or a collateral directory (Intel or SEV-SNP).
func loadNewCollateral(p, opKeys string) (*collateral.Bundle, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		b := &collateral.Bundle{Issued: fi.ModTime()}
		if ierr := b.AddIntelDir(p); ierr != nil {
			if serr := b.AddSNPDir(p); serr != nil {
				return nil, fmt.Errorf("%s is neither an Intel (%v) nor an SEV-SNP collateral directory (%v)", p, ierr, serr)
			}
		}
		return b, nil
	}
	if opKeys == "" {
		return nil, fmt.Errorf("%s is a bundle: --operator-keys is required", p)
	}
	pem, err := os.ReadFile(opKeys)
	if err != nil {
		return nil, err
	}
	keys, err := policies.ParseTrustKeys(pem)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	b, _, err := collateral.Open(data, keys)
	return b, err
}
