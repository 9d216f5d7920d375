package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/medicus-cloud/trust/api/trustv1"
)

// adminCall makes a command that calls the admin API with tf's certificate.
func adminCall(g *globals, tf *tlsFlags, use, short string, args cobra.PositionalArgs, f func(ctx context.Context, c pb.AdminClient, w io.Writer, args []string) error) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: args, RunE: func(cmd *cobra.Command, args []string) error {
		conn, err := tf.dial(g.addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
		defer cancel()
		return f(ctx, pb.NewAdminClient(conn), cmd.OutOrStdout(), args)
	}}
}

// newShredCmd is `trustctl admin shred`: crypto-shredding, two operators.
func newShredCmd(g *globals, tf *tlsFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "shred", Short: "Destroy a (per-patient) key for good: one operator requests, another approves"}
	cmd.AddCommand(
		adminCall(g, tf, "request KEY", "Ask to shred KEY (operator); prints the request ID", cobra.ExactArgs(1), func(ctx context.Context, c pb.AdminClient, w io.Writer, args []string) error {
			r, err := c.RequestShred(ctx, &pb.RequestShredRequest{KeyName: args[0]})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(w, "shred of %s requested: %s\nanother operator approves with: trustctl admin shred approve %s\n", args[0], r.GetId(), r.GetId())
			return err
		}),
		adminCall(g, tf, "approve ID", "Approve a shred request of another operator (operator): the key is destroyed", cobra.ExactArgs(1), func(ctx context.Context, c pb.AdminClient, w io.Writer, args []string) error {
			if _, err := c.ApproveShred(ctx, &pb.ApproveShredRequest{Id: args[0]}); err != nil {
				return err
			}
			_, err := fmt.Fprintf(w, "shredded (request %s): what the key wrapped is unreadable for good\n", args[0])
			return err
		}),
	)
	return cmd
}

// newBreakGlassCmd is `trustctl breakglass`.
func newBreakGlassCmd(g *globals) *cobra.Command {
	tf := &tlsFlags{}
	cmd := &cobra.Command{Use: "breakglass", Short: "Emergency releases outside consent: request, approve (another person), list, review"}
	tf.register(cmd)
	var tenant, key, reason, outcome string
	var dur time.Duration
	var all bool
	req := adminCall(g, tf, "request", "Request a break-glass (role break-glass); prints its ID", cobra.NoArgs, func(ctx context.Context, c pb.AdminClient, w io.Writer, _ []string) error {
		r, err := c.RequestBreakGlass(ctx, &pb.RequestBreakGlassRequest{Tenant: tenant, KeyName: key, Reason: reason, DurationSeconds: uint32(dur / time.Second)})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "break-glass requested: %s\nanother person approves with: trustctl breakglass approve %s\n", r.GetId(), r.GetId())
		return err
	})
	req.Flags().StringVar(&tenant, "tenant", "", "the tenant (hospital) whose data key is needed")
	req.Flags().StringVar(&key, "key", "", "the data key name")
	req.Flags().StringVar(&reason, "reason", "", "why (10-1024 bytes; never a patient's name or ID): kept in trustd's admin state, its digest in the audit log")
	req.Flags().DurationVar(&dur, "duration", time.Hour, "how long (at most 1h, and at most what the grant's policy allows)")
	list := adminCall(g, tf, "list", "List break-glass entries not yet reviewed (break-glass or auditor)", cobra.NoArgs, func(ctx context.Context, c pb.AdminClient, w io.Writer, _ []string) error {
		r, err := c.ListBreakGlass(ctx, &pb.ListBreakGlassRequest{All: all})
		if err != nil {
			return err
		}
		return printBreakGlass(w, r.GetEntries())
	})
	list.Flags().BoolVar(&all, "all", false, "also list reviewed entries")
	review := adminCall(g, tf, "review ID", "Close a break-glass as justified or unjustified (break-glass or auditor; not its requester or approver)", cobra.ExactArgs(1), func(ctx context.Context, c pb.AdminClient, w io.Writer, args []string) error {
		if _, err := c.ReviewBreakGlass(ctx, &pb.ReviewBreakGlassRequest{Id: args[0], Outcome: outcome}); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "break-glass %s reviewed: %s\n", args[0], outcome)
		return err
	})
	review.Flags().StringVar(&outcome, "outcome", "", "justified or unjustified")
	review.MarkFlagRequired("outcome")
	cmd.AddCommand(req,
		adminCall(g, tf, "approve ID", "Approve another person's break-glass (role break-glass)", cobra.ExactArgs(1), func(ctx context.Context, c pb.AdminClient, w io.Writer, args []string) error {
			r, err := c.ApproveBreakGlass(ctx, &pb.ApproveBreakGlassRequest{Id: args[0]})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(w, "break-glass %s approved until %s (or less, as the grant's policy says)\n", args[0], r.GetExpiresAt().AsTime().UTC().Format(time.RFC3339))
			return err
		}),
		list, review)
	return cmd
}

// printBreakGlass writes the list table (golden-tested).
func printBreakGlass(w io.Writer, es []*pb.BreakGlass) error {
	if len(es) == 0 {
		_, err := fmt.Fprintln(w, "no break-glass awaiting review")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTENANT\tKEY\tREQUESTED\tBY\tAPPROVED BY\tUNTIL\tRELEASES\tOUTCOME\tREASON")
	ts := func(t interface{ AsTime() time.Time }, ok bool) string {
		if !ok {
			return "-"
		}
		return t.AsTime().UTC().Format(time.RFC3339)
	}
	for _, e := range es {
		appr, out := e.GetApprovedBy(), e.GetOutcome()
		if appr == "" {
			appr = "(pending)"
		}
		if out == "" {
			out = "(unreviewed)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.GetId(), e.GetTenant(), e.GetKeyName(),
			ts(e.GetRequestedAt(), e.GetRequestedAt() != nil), e.GetRequestedBy(), appr, ts(e.GetExpiresAt(), e.GetExpiresAt() != nil),
			e.GetReleases(), out, e.GetReason())
	}
	return tw.Flush()
}

// newConsentCmd is `trustctl consent`: a tenant's consent keys and withdrawals.
func newConsentCmd(g *globals) *cobra.Command {
	tf := &tlsFlags{}
	cmd := &cobra.Command{Use: "consent", Short: "Consent statements (docs/consent.md): register a tenant's signing key, withdraw a statement"}
	tf.register(cmd)
	var tenant string
	reg := adminCall(g, tf, "register-key KEY_ID PUBLIC_KEY.pem", "Register the key under which a tenant signs consent statements (consent-admin)", cobra.ExactArgs(2), func(ctx context.Context, c pb.AdminClient, w io.Writer, args []string) error {
		b, err := os.ReadFile(args[1])
		if err != nil {
			return err
		}
		if _, err := c.RegisterConsentKey(ctx, &pb.RegisterConsentKeyRequest{Tenant: tenant, KeyId: args[0], PublicKey: b}); err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "registered consent key %s\n", args[0])
		return err
	})
	wd := adminCall(g, tf, "withdraw STATEMENT_ID", "Record a withdrawal of consent (consent-admin): effective at the next release", cobra.ExactArgs(1), func(ctx context.Context, c pb.AdminClient, w io.Writer, args []string) error {
		if _, err := c.WithdrawConsent(ctx, &pb.WithdrawConsentRequest{Tenant: tenant, StatementId: args[0]}); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "consent statement %s withdrawn\n", args[0])
		return err
	})
	for _, c := range []*cobra.Command{reg, wd} {
		c.Flags().StringVar(&tenant, "tenant", "", "the tenant")
		c.MarkFlagRequired("tenant")
	}
	cmd.AddCommand(reg, wd)
	return cmd
}
