package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/medicus-cloud/trust/api/trustv1"
)

type revokeCallFunc func(use, short string, nargs int, f func(ctx context.Context, c pb.AdminClient, w io.Writer, args []string) error) *cobra.Command

// revokeCmds are the security team's revocation commands under `trustctl admin`.
func revokeCmds(call revokeCallFunc) []*cobra.Command {
	var tee, reason string
	rv := call("revoke KIND VALUE", "Revoke a platform, image, TCB level or advisory on every replica (security-team)", 2,
		func(ctx context.Context, c pb.AdminClient, w io.Writer, args []string) error {
			r, err := c.Revoke(ctx, &pb.RevokeRequest{Kind: args[0], Value: args[1], Tee: tee, Reason: reason})
			if err != nil {
				return err
			}
			rev := r.GetRevocation()
			_, err = fmt.Fprintf(w, "revoked %s %s (revocation %s); every replica refuses matching tokens within its poll interval\n",
				rev.GetKind(), rev.GetValue(), rev.GetId())
			return err
		})
	rv.Long = `Revoke evidence that the policy and the collateral would still accept. KIND is one of:
  measurement  a launch or further measurement (hex)
  image        an SNP image_id or family_id, or a TDX mrconfigid (hex)
  tcb          a TCB level "component:N": component N and below (for example snp:20)
  advisory     an outstanding advisory ID (for example INTEL-SA-00837)
  chip_id      an SEV-SNP chip (hex)
  ppid         an Intel platform's PPID (hex)
Outstanding tokens whose claims match stop getting keys; their workloads see PermissionDenied.`
	rv.Flags().StringVar(&tee, "tee", "", "only evidence of this TEE type (sev-snp, tdx, sgx)")
	rv.Flags().StringVar(&reason, "reason", "", "why, for the revocation list (at most 512 bytes; not in the public audit log)")
	list := call("revocations", "List the revocations this replica enforces (security-team)", 0,
		func(ctx context.Context, c pb.AdminClient, w io.Writer, _ []string) error {
			r, err := c.ListRevocations(ctx, &pb.ListRevocationsRequest{})
			if err != nil {
				return err
			}
			return printRevocations(w, r)
		})
	return []*cobra.Command{rv, list}
}

func printRevocations(w io.Writer, r *pb.ListRevocationsResponse) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "refreshed\t%s\n", r.GetRefreshedAt().AsTime().UTC().Format(time.RFC3339))
	fmt.Fprintln(tw, "ID\tKIND\tVALUE\tTEE\tCREATED\tBY\tREASON")
	for _, v := range r.GetRevocations() {
		tee := v.GetTee()
		if tee == "" {
			tee = "any"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.GetId(), v.GetKind(), v.GetValue(), tee,
			v.GetCreated().AsTime().UTC().Format(time.RFC3339), v.GetBy(), v.GetReason())
	}
	return tw.Flush()
}
