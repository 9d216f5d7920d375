package main

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/internal/tlsconfig"
	"github.com/medicus-cloud/trust/loadtest"
	"github.com/medicus-cloud/trust/metrics"
)

// tlsFlags are how trustctl reaches a trustd that serves TLS: the server's CA and, for the admin
// API, the administrator's certificate (whose role decides what it may do).
type tlsFlags struct {
	ca, cert, key string
	insecure      bool
}

func (f *tlsFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.ca, "ca", "", "CA certificate(s) of trustd's server certificate (PEM); default the system roots")
	cmd.PersistentFlags().StringVar(&f.cert, "cert", "", "your client certificate (PEM) with a role: operator, security-team or auditor")
	cmd.PersistentFlags().StringVar(&f.key, "key", "", "its private key (PEM)")
	cmd.PersistentFlags().BoolVar(&f.insecure, "insecure", false, "plaintext, for a local trustd in --dev mode without TLS")
}

func (f *tlsFlags) config() (*tls.Config, error) { return f.configNamed("") }

func (f *tlsFlags) configNamed(serverName string) (*tls.Config, error) {
	if f.insecure {
		return nil, nil
	}
	return tlsconfig.Client(tlsconfig.ClientOptions{CAFile: f.ca, ServerName: serverName, CertFile: f.cert, KeyFile: f.key})
}

func (f *tlsFlags) dial(addr string) (*grpc.ClientConn, error) { return f.dialNamed(addr, "") }

func (f *tlsFlags) dialNamed(addr, serverName string) (*grpc.ClientConn, error) {
	cfg, err := f.configNamed(serverName)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if cfg != nil {
		creds = credentials.NewTLS(cfg)
	}
	return grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
}

func newAdminCmd(g *globals) *cobra.Command {
	tf := &tlsFlags{}
	cmd := &cobra.Command{Use: "admin", Short: "trustd's admin API over mutual TLS: keys, secrets, policies, log info"}
	tf.register(cmd)
	call := func(use, short string, nargs int, f func(ctx context.Context, c pb.AdminClient, w io.Writer, args []string) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(nargs), RunE: func(cmd *cobra.Command, args []string) error {
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
	var fromFile string
	putSecret := call("put-secret NAME", "Store a new version of a secret (operator), read from standard input or --from-file", 1,
		func(ctx context.Context, c pb.AdminClient, w io.Writer, args []string) error {
			b, err := readSecretFrom(cmdIn, fromFile)
			if err != nil {
				return err
			}
			r, err := c.PutSecret(ctx, &pb.PutSecretRequest{Name: args[0], Value: b})
			clear(b)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(w, "stored secret %s version %d\n", args[0], r.GetVersion())
			return err
		})
	putSecret.Flags().StringVar(&fromFile, "from-file", "", "read the secret from FILE")
	putSecret.PreRun = func(cmd *cobra.Command, _ []string) { cmdIn = cmd.InOrStdin() }
	cmd.AddCommand(
		newShredCmd(g, tf),
		call("create-key NAME", "Create a data-key root key (operator), in the key store that trustd routes the tenant to", 1, func(ctx context.Context, c pb.AdminClient, w io.Writer, args []string) error {
			if _, err := c.CreateKey(ctx, &pb.CreateKeyRequest{Name: args[0]}); err != nil {
				return err
			}
			_, err := fmt.Fprintf(w, "created key %s\n", args[0])
			return err
		}),
		call("rotate-key NAME", "Rotate a data-key root key (operator), in the key store that trustd routes the tenant to", 1, func(ctx context.Context, c pb.AdminClient, w io.Writer, args []string) error {
			if _, err := c.RotateKey(ctx, &pb.RotateKeyRequest{Name: args[0]}); err != nil {
				return err
			}
			_, err := fmt.Fprintf(w, "rotated key %s\n", args[0])
			return err
		}),
		putSecret,
		call("reload-policies", "Load the newest signed policy bundle now (security-team)", 0, func(ctx context.Context, c pb.AdminClient, w io.Writer, _ []string) error {
			r, err := c.ReloadPolicies(ctx, &pb.ReloadPoliciesRequest{})
			if err != nil {
				return err
			}
			return printPolicyStatus(w, r.GetStatus())
		}),
		call("policy-status", "Show the active policy bundle (security-team)", 0, func(ctx context.Context, c pb.AdminClient, w io.Writer, _ []string) error {
			r, err := c.GetPolicyStatus(ctx, &pb.GetPolicyStatusRequest{})
			if err != nil {
				return err
			}
			return printPolicyStatus(w, r.GetStatus())
		}),
		call("log-info", "Show the audit log's origin and verifier key (auditor)", 0, func(ctx context.Context, c pb.AdminClient, w io.Writer, _ []string) error {
			r, err := c.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(w, "origin        %s\nverifier key  %s\ntiles         https://<trustd http listener>%s\n", r.GetOrigin(), r.GetVerifierKey(), r.GetTilesPath())
			return err
		}),
	)
	cmd.AddCommand(revokeCmds(call)...)
	return cmd
}

var cmdIn io.Reader

func printPolicyStatus(w io.Writer, s *pb.PolicyStatus) error {
	_, err := fmt.Fprintf(w, "bundle version %d digest %s\npolicies: %s\n", s.GetVersion(), hex.EncodeToString(s.GetDigest()), strings.Join(s.GetPolicies(), ", "))
	return err
}

func newStatusCmd() *cobra.Command {
	tf := &tlsFlags{}
	var url string
	cmd := &cobra.Command{
		Use:   "status --metrics URL",
		Short: "Show trustd's request rates, latencies, verdicts, rejections and key-store errors from its metrics endpoint",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client := http.DefaultClient
			if strings.HasPrefix(url, "https://") {
				cfg, err := tf.config()
				if err != nil {
					return err
				}
				client = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
			}
			st, err := metrics.FetchStatus(cmd.Context(), client, url)
			if err != nil {
				return err
			}
			return st.Print(cmd.OutOrStdout())
		},
	}
	tf.register(cmd)
	cmd.Flags().StringVar(&url, "metrics", "http://127.0.0.1:7480/metrics", "trustd's metrics URL (its http_listen)")
	return cmd
}

func newLoadtestCmd(g *globals) *cobra.Command {
	tf := &tlsFlags{}
	var (
		o           loadtest.Options
		measurement string
	)
	cmd := &cobra.Command{
		Use:   "loadtest [--insecure] [--workloads N] [--requests N | --duration D] [--rate R]",
		Short: "Drive simulated workloads (attest + release) against a trustd on this machine and report throughput, p50/p99 and errors",
		Long: `Drive many simulated workloads against a trustd on 127.0.0.1 (remote addresses are
refused), bounded in count and time. The trustd must run in dev mode (trustd --dev), the only
mode that accepts the simulated TEE; --insecure talks plaintext gRPC to a dev trustd without
TLS. Each request attests a fresh workload and releases one data key. Prints throughput,
p50/p99 latency and errors by status code.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := hex.DecodeString(measurement)
			if err != nil {
				return fmt.Errorf("--measurement: %w", err)
			}
			o.Addr, o.Measurement = g.addr, m
			if o.TLS, err = tf.config(); err != nil {
				return err
			}
			o.Insecure = tf.insecure
			r, err := loadtest.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if err := r.Print(cmd.OutOrStdout()); err != nil {
				return err
			}
			if r.Errors > 0 {
				return &exitError{code: 1, err: errors.New("errors during the load test"), quiet: true}
			}
			return nil
		},
	}
	tf.register(cmd)
	cmd.Flags().IntVar(&o.Workloads, "workloads", 16, "concurrent simulated workloads")
	cmd.Flags().IntVar(&o.Requests, "requests", 1000, "requests in all (0: until --duration)")
	cmd.Flags().DurationVar(&o.Duration, "duration", 30*time.Second, "upper bound on the run time")
	cmd.Flags().Float64Var(&o.Rate, "rate", 0, "target requests per second in all (0: as fast as possible)")
	cmd.Flags().StringVar(&measurement, "measurement", "6d656469637573207472757374206578616d706c652068656c6c6f20696d616765207631", "simulated measurement (hex) approved by trustd's policy")
	cmd.Flags().StringVar(&o.Name, "name", "hello/records", "data key to release")
	cmd.Flags().Uint32Var(&o.SVN, "svn", 1, "simulated guest SVN")
	return cmd
}
