package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	simtee "github.com/medicus-cloud/trust/attest/sim"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/challenge"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/service"
	"github.com/medicus-cloud/trust/token"
)

// Env is what trustd takes from its process environment; the library never reads it itself.
type Env struct {
	MasterKey string // MEDICUS_MASTER_KEY
}

// Daemon is a wired trustd, ready to serve.
type Daemon struct {
	cfg     *Config
	log     *slog.Logger
	svc     *service.Service
	auditLg *audit.Log
	tokens  *token.Issuer
	closers []func() error
}

// New opens every component named by cfg. On error, whatever was opened is closed.
func New(ctx context.Context, cfg *Config, env Env, log *slog.Logger) (d *Daemon, err error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d = &Daemon{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	keys, err := d.openKeyStore(ctx, env)
	if err != nil {
		return nil, err
	}
	bundle, err := policies.Load(cfg.Policy)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	log.Info("policy bundle loaded", "path", cfg.Policy, "policies", len(bundle.Policies), "digest", fmt.Sprintf("%x", bundle.Digest))
	nk, err := nonceKeys(cfg.NonceKeyFiles, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	nonces, err := challenge.New(challenge.Options{Keys: nk})
	if err != nil {
		return nil, err
	}
	tk, err := tokenKey(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	d.tokens, err = token.NewIssuer(token.Options{Key: tk, Issuer: "trustd", Lifetime: cfg.TokenLifetime})
	if err != nil {
		return nil, err
	}
	d.auditLg, err = audit.OpenLocal(ctx, audit.LocalOptions{Dir: filepath.Join(cfg.DataDir, "audit")})
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	d.closers = append(d.closers, d.auditLg.Close)
	log.Info("audit log open", "dir", filepath.Join(cfg.DataDir, "audit"), "verifier_key", d.auditLg.VerifierKey())
	var verifiers []attest.Verifier
	if cfg.Dev {
		log.Warn("DEV MODE: accepting INSECURE simulated evidence that anyone can forge; never use in production")
		verifiers = append(verifiers, simtee.NewInsecureVerifier())
	}
	d.svc, err = service.New(service.Options{
		Verifiers: verifiers, Policies: service.StaticPolicies{Bundle: bundle}, Keys: keys,
		Audit: d.auditLg, Nonces: nonces, Tokens: d.tokens, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Daemon) openKeyStore(_ context.Context, env Env) (kms.KeyStore, error) {
	mk, from, err := MasterKey(d.cfg.MasterKeyFile, env.MasterKey, d.cfg.DataDir, d.cfg.Dev)
	if err != nil {
		return nil, err
	}
	k, err := local.Open(local.Options{Path: filepath.Join(d.cfg.DataDir, "keyring"), MasterKey: mk})
	if err != nil {
		return nil, err
	}
	d.log.Info("local keyring open", "master_key_from", from)
	return k, nil
}

// Run serves until ctx is cancelled, then stops gracefully: in-flight releases finish.
func (d *Daemon) Run(ctx context.Context) error {
	if !d.cfg.Dev {
		return errors.New("TLS listeners are not configured yet: start with --dev for a local plaintext trustd")
	}
	lis, err := net.Listen("tcp", d.cfg.Listen)
	if err != nil {
		return err
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(4 << 20))
	pb.RegisterTrustServer(srv, d.svc)
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(lis) }()
	d.log.Info("trustd serving", "grpc", lis.Addr().String())
	var hs *http.Server
	if d.cfg.HTTPListen != "" {
		mux := http.NewServeMux()
		mux.Handle("/audit/", http.StripPrefix("/audit", d.auditLg.Handler()))
		hs = &http.Server{Addr: d.cfg.HTTPListen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		hl, err := net.Listen("tcp", d.cfg.HTTPListen)
		if err != nil {
			srv.Stop()
			return err
		}
		go func() { errc <- hs.Serve(hl) }()
		d.log.Info("trustd http serving", "http", hl.Addr().String())
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		srv.Stop()
		return err
	}
	d.log.Info("shutting down: finishing in-flight requests")
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		srv.Stop()
	}
	if hs != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}
	return nil
}

// Close releases what New opened.
func (d *Daemon) Close() error {
	var errs []error
	for i := len(d.closers) - 1; i >= 0; i-- {
		errs = append(errs, d.closers[i]())
	}
	d.closers = nil
	return errors.Join(errs...)
}
