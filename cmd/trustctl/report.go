package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/internal/keyfile"
	"github.com/medicus-cloud/trust/report"
)

// newAuditReportCmd is `trustctl audit report`: one tenant's records of processing (Art. 30).
func newAuditReportCmd(af *auditFlags) *cobra.Command {
	var tenant, since, ckFile, tkFile, format string
	cmd := &cobra.Command{
		Use:   "report --tenant T (--tenant-key FILE | --context-key FILE) [--since D] [--format csv|json]",
		Short: "Export a tenant's records of processing (GDPR Art. 30): releases, services, policies, purposes",
		Long: `report verifies the log and exports what was released for one tenant: to which service (policy
and image), under which policy bundle, for which purposes, with which consent statement or
break-glass, and the tenant's consent administration. Records name tenants by keyed digest only,
so reading a tenant's records needs that tenant's context key (from 'trustctl audit context-key'):
the auditor of one tenant holds that tenant's key and finds no other tenant's records.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, err := af.source(cmd)
			if err != nil {
				return err
			}
			var key *audit.TenantKey
			switch {
			case (ckFile == "") == (tkFile == ""):
				return errors.New("give exactly one of --tenant-key and --context-key")
			case ckFile != "":
				ck, err := readContextKey(ckFile)
				if err != nil {
					return err
				}
				key = ck.Tenant(tenant)
			default:
				b, err := keyfile.Read(tkFile, "--tenant-key")
				if err != nil {
					return err
				}
				if key, err = audit.ParseTenantKey(tenant, b); err != nil {
					return fmt.Errorf("--tenant-key: %w", err)
				}
			}
			o := report.Options{Source: src, Key: key}
			if since != "" {
				if o.Since, err = parseSince(since); err != nil {
					return fmt.Errorf("--since: %w", err)
				}
			}
			rows, err := report.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			switch format {
			case "csv":
				return report.WriteCSV(cmd.OutOrStdout(), rows)
			case "json":
				return report.WriteJSON(cmd.OutOrStdout(), tenant, rows)
			}
			return fmt.Errorf("--format %q: want csv or json", format)
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "the tenant")
	cmd.Flags().StringVar(&since, "since", "", "from this date (2006-01-02) or time (RFC 3339)")
	cmd.Flags().StringVar(&ckFile, "context-key", "", "the deployment's audit context key file")
	cmd.Flags().StringVar(&tkFile, "tenant-key", "", "the tenant's context key file (hex, from audit context-key)")
	cmd.Flags().StringVar(&format, "format", "csv", "csv or json")
	cmd.MarkFlagRequired("tenant")
	return cmd
}

func parseSince(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}
