// Command ego-service is an example of a vendor service shipped as an Intel SGX enclave built with
// EGo. Inside the enclave it attests to trustd with an SGX quote, exactly as a workload in a
// confidential VM does with an SNP report or TDX quote, and then keeps patient records encrypted
// under data keys that trustd releases only to this enclave.
//
// It serves HTTPS only, with a TLS key made inside the enclave and bound into an SGX quote of its
// own (see tlsbind.go), and only to clients whose certificate chains to the hospitals' client CA
// (mutual TLS):
//
//	GET /attestation      the quote that binds the service's TLS key (JSON: tee, quote)
//	PUT /records/{case}   store the request body encrypted (envelope format) for the case
//	GET /records/{case}   return the decrypted record
//	GET /healthz          "ok" once attested
//
// Records are kept in memory here; a real service would write the ciphertext to the host.
// See README.md for building, signing and running it with EGo.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/ego"
	"github.com/medicus-cloud/trust/sdk"
)

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ego-service:", err)
		if errors.Is(err, enclave.ErrNoTEE) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

// config is the service's command line.
type config struct {
	// Trustd is trustd's address, host:port.
	Trustd string
	// CAFile is the PEM CA that trustd's TLS certificate must chain to. Embed it in the enclave
	// (enclave.json "files"), so that it is part of MRENCLAVE: a CA from the host would let the
	// host impersonate trustd and hand the enclave keys it knows.
	CAFile string
	// ClientCAFile is the PEM CA of the hospitals' client certificates: only their holders may
	// connect. Embedded in the enclave like CAFile, so that the host cannot add its own.
	ClientCAFile string
	// Listen is the HTTPS listen address.
	Listen string
	// KeyName is the trustd data key that records are encrypted under.
	KeyName string
	// Tenant goes into every record's key context.
	Tenant string
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("ego-service", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	fs.StringVar(&c.Trustd, "trustd", "trustd.medicus.internal:7443", "trustd address (host:port)")
	fs.StringVar(&c.CAFile, "ca", "/etc/medicus/trustd-ca.pem", "CA of trustd's TLS certificate (a path inside the enclave)")
	fs.StringVar(&c.ClientCAFile, "client-ca", "/etc/medicus/hospital-client-ca.pem", "CA of the hospitals' client certificates (a path inside the enclave)")
	fs.StringVar(&c.Listen, "listen", ":8443", "HTTPS listen address (mutual TLS)")
	fs.StringVar(&c.KeyName, "key", "ego-service/records", "trustd data key for records")
	fs.StringVar(&c.Tenant, "tenant", "", "tenant of the records (required)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		fmt.Fprintln(stderr, "ego-service:", err)
		return nil, err
	}
	return c, nil
}

func (c *config) validate() error {
	switch {
	case c.Tenant == "":
		return errors.New("-tenant is required")
	case c.KeyName == "":
		return errors.New("-key must not be empty")
	case c.CAFile == "":
		return errors.New("-ca is required: the enclave must know which trustd it talks to")
	case c.ClientCAFile == "":
		return errors.New("-client-ca is required: patient records go only to authenticated hospital clients")
	}
	if _, _, err := net.SplitHostPort(c.Trustd); err != nil {
		return fmt.Errorf("-trustd %q: %w", c.Trustd, err)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("-listen %q: %w", c.Listen, err)
	}
	return nil
}

// tlsConfig trusts only the CA in CAFile.
func (c *config) tlsConfig() (*tls.Config, error) {
	pemCA, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		return nil, fmt.Errorf("-ca %s holds no PEM certificate", c.CAFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}, nil
}

// clientCAs reads the hospitals' client CA.
func (c *config) clientCAs() (*x509.CertPool, error) {
	pemCA, err := os.ReadFile(c.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("-client-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		return nil, fmt.Errorf("-client-ca %s holds no PEM certificate", c.ClientCAFile)
	}
	return pool, nil
}

// run attests through the EGo provider and serves until ctx ends.
func run(ctx context.Context, cfg *config, out io.Writer) error {
	prov, err := ego.New()
	if err != nil {
		return err
	}
	tlsConf, err := cfg.tlsConfig()
	if err != nil {
		return err
	}
	clientCAs, err := cfg.clientCAs()
	if err != nil {
		return err
	}
	c, err := sdk.New(ctx, sdk.Options{Addr: cfg.Trustd, Provider: prov, TLS: tlsConf})
	if err != nil {
		return err
	}
	defer c.Close()
	id, err := newTLSIdentity(ctx, prov, time.Now())
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, c, id, clientCAs, ln, out)
}

// serve attests once up front (so that a denial shows at start, not on the first request) and
// then serves HTTPS with the attested key and mutual TLS on ln until ctx ends.
func serve(ctx context.Context, cfg *config, c *sdk.Client, id *tlsIdentity, clientCAs *x509.CertPool, ln net.Listener, out io.Writer) error {
	att, err := c.Attest(ctx)
	if err != nil {
		var d *sdk.DeniedError
		if errors.As(err, &d) {
			return fmt.Errorf("trustd denied this enclave: %s is %s, expected %s", d.Claim, d.Seen, d.Expected)
		}
		return err
	}
	fmt.Fprintf(out, "ego-service: attested to trustd as SGX enclave; policy %q, token valid until %s\n", att.Policy, att.ExpiresAt.Format(time.RFC3339))
	srv := &http.Server{
		Handler:           newHandler(c, cfg.KeyName, cfg.Tenant, id.doc),
		TLSConfig:         id.serverTLS(clientCAs),
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shut)
	}
}

// caseID accepts the case identifiers of the records API: 1 to 64 letters, digits, '-' or '_'.
func caseID(s string) (string, error) {
	if len(s) == 0 || len(s) > 64 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
		return "", fmt.Errorf("case %q: want 1 to 64 letters, digits, '-' or '_'", s)
	}
	return s, nil
}
