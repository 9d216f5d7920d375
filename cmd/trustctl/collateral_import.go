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
	"github.com/medicus-cloud/trust/collateral"
)

// newCollateralImportCmd is `trustctl collateral import FILE`: the admin API's ImportCollateral.
func newCollateralImportCmd(g *globals) *cobra.Command {
	tf := &tlsFlags{}
	cmd := adminCall(g, tf, "import FILE", "Import a signed collateral bundle into a running trustd, no restart (security-team)", cobra.ExactArgs(1),
		func(ctx context.Context, c pb.AdminClient, w io.Writer, args []string) error {
			data, err := readBoundedFile(args[0], collateral.MaxBundleSize)
			if err != nil {
				return err
			}
			r, err := c.ImportCollateral(ctx, &pb.ImportCollateralRequest{Bundle: data})
			if err != nil {
				return err
			}
			return printImported(w, r)
		})
	cmd.Long = `Send FILE (written by 'trustctl collateral bundle') to trustd's admin API. trustd verifies it
under collateral_bundle.keys_file, refuses it when it was issued before the bundle it imported
last, and its offline TDX, SGX and SEV-SNP verifiers use it at once. Replicas that share the
PostgreSQL audit database apply it within collateral_bundle.poll_interval (default 10s).
Bundles over 4 MiB need limits.max_recv_msg_bytes raised on trustd.`
	tf.register(cmd)
	return cmd
}

func printImported(w io.Writer, r *pb.ImportCollateralResponse) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if r.GetChanged() {
		fmt.Fprintln(tw, "imported collateral bundle; replicas on the same PostgreSQL follow within their poll interval")
	} else {
		fmt.Fprintln(tw, "this collateral bundle was already in use; nothing changed")
	}
	fmt.Fprintf(tw, "issued\t%s\n", r.GetIssued().AsTime().UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "signed by\t%s\n", r.GetKeyId())
	fmt.Fprintf(tw, "sha256\t%s\n", r.GetSha256())
	fmt.Fprintln(tw, "TEE\tPLATFORM\tFILES")
	for _, it := range r.GetItems() {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", it.GetTee(), it.GetPlatform(), it.GetFiles())
	}
	return tw.Flush()
}

// readBoundedFile reads path when it is at most max bytes.
func readBoundedFile(path string, max int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, a collateral bundle is at most %d", path, fi.Size(), max)
	}
	return os.ReadFile(path)
}
