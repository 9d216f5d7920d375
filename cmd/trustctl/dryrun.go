package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/replay"
)

// newDryrunCmd is `trustctl policy dryrun`.
func newDryrunCmd() *cobra.Command {
	af := &auditFlags{}
	var since, ckFile, format string
	var tenants []string
	cmd := &cobra.Command{
		Use:   "dryrun BUNDLE --log LOG [--since T] [--context-key FILE --tenant T...] [--format text|json]",
		Short: "Replay the decisions of an audit log against a candidate bundle: which would flip, per image and tenant",
		Long: `dryrun reads and verifies an audit log (a tampered log is an error and no report), replays
every attestation against the candidate bundle (records hold the claims a policy reads) and every
allowed release as far as the log allows (image and grant; context constraints and consent are
recorded as keyed digests only and cannot be replayed), and reports what would flip.
Tenants show as digests unless --context-key and --tenant name them.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := af.source(cmd)
			if err != nil {
				return err
			}
			b, err := policies.Load(args[0])
			if err != nil {
				return err
			}
			o := replay.Options{Source: src, Bundle: b}
			if since != "" {
				if o.Since, err = time.Parse(time.RFC3339, since); err != nil {
					return fmt.Errorf("--since: %w", err)
				}
			}
			if len(tenants) > 0 {
				if ckFile == "" {
					return fmt.Errorf("--tenant needs --context-key")
				}
				ck, err := readContextKey(ckFile)
				if err != nil {
					return err
				}
				o.TenantKeys = map[string]*audit.TenantKey{}
				for _, t := range tenants {
					o.TenantKeys[t] = ck.Tenant(t)
				}
			}
			rep, err := replay.Run(cmd.Context(), o)
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
	cmd.Flags().StringVar(&since, "since", "", "replay records from this time on (RFC 3339)")
	cmd.Flags().StringVar(&ckFile, "context-key", "", "the deployment's audit context key, to name tenants")
	cmd.Flags().StringSliceVar(&tenants, "tenant", nil, "a tenant to name in the report (repeatable)")
	cmd.Flags().StringVar(&format, "format", "text", "text or json")
	return cmd
}
