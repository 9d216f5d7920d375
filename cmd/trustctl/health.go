package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// newHealthCmd is the probe that Kubernetes and systemd run: the standard gRPC health check over
// TLS 1.3 (the kubelet's own gRPC probe cannot speak TLS). Exit 0 only when SERVING.
func newHealthCmd(g *globals) *cobra.Command {
	tf := &tlsFlags{}
	var serverName, service string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "health [--ca FILE] [--server-name NAME] [--service NAME]",
		Short: "Check trustd's gRPC health service; exit 0 only when serving",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := tf.dialNamed(g.addr, serverName)
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), r.GetStatus())
			if r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				return &exitError{code: 1, err: fmt.Errorf("not serving"), quiet: true}
			}
			return nil
		},
	}
	tf.register(cmd)
	cmd.Flags().StringVar(&serverName, "server-name", "", "name to verify in trustd's certificate (default: the host of --addr)")
	cmd.Flags().StringVar(&service, "service", "", "service to ask about (empty: the server as a whole; medicus.trust.v1.Trust for readiness)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}
