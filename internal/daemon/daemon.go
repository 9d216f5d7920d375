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
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest/schemes"
	"github.com/medicus-cloud/trust/audit/storage/posix"
	"github.com/medicus-cloud/trust/audit/storage/postgres"
	"github.com/medicus-cloud/trust/audit/tlog"
	"github.com/medicus-cloud/trust/challenge"
	"github.com/medicus-cloud/trust/consent"
	"github.com/medicus-cloud/trust/ear/issuer"
	"github.com/medicus-cloud/trust/internal/keyfile"
	"github.com/medicus-cloud/trust/internal/limits"
	"github.com/medicus-cloud/trust/internal/tlsconfig"
	"github.com/medicus-cloud/trust/kms/route"
	"github.com/medicus-cloud/trust/metrics"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/policies/pgstate"
	"github.com/medicus-cloud/trust/revoke"
	"github.com/medicus-cloud/trust/service"
)

// Env is what trustd takes from its process environment; the library never reads it itself.
type Env struct {
	MasterKey string // MEDICUS_MASTER_KEY
	AuditDSN  string // MEDICUS_AUDIT_DSN
	// LookupEnv reads variables that the configuration names (kms pkcs11 pin_env).
	LookupEnv func(string) (string, bool)
}

// AuditDSNEnv may carry the PostgreSQL connection string of the audit log.
const AuditDSNEnv = "MEDICUS_AUDIT_DSN"

// auditLog is what trustd needs of either audit storage driver (posix, postgres).
type auditLog = tlog.Log

// Daemon is a wired trustd, ready to serve.
type Daemon struct {
	cfg      *Config
	admin    *service.Admin // nil unless mutual TLS is configured
	metrics  *metrics.Metrics
	registry *prometheus.Registry
	policies *policies.Store // nil for a static dev-mode file
	log      *slog.Logger
	svc      *service.Service
	auditLg  auditLog
	tokens   *issuer.Issuer
	keys     *route.Router
	revoked  *revoke.Set
	consent  *consent.Registry
	// coll is the collateral high-water mark and imported bundle (collateral.go).
	coll    collateralState
	closers []func() error
}

// New opens every component named by cfg. On error, whatever was opened is closed.
func New(ctx context.Context, cfg *Config, env Env, log *slog.Logger) (d *Daemon, err error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d = &Daemon{cfg: cfg, log: log}
	opened := d // the error returns below set d to nil
	defer func() {
		if err != nil {
			opened.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	d.registry = metrics.NewRegistry()
	keys, err := d.openKeyStore(ctx, env)
	if err != nil {
		return nil, err
	}
	d.keys = keys
	pols, err := d.openPolicies(ctx, env)
	if err != nil {
		return nil, err
	}
	nk, err := nonceKeys(cfg.NonceKeyFiles, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	nonces, err := challenge.New(challenge.Options{Keys: nk, ClockSkew: cfg.NonceClockSkew})
	if err != nil {
		return nil, err
	}
	ks, err := issuer.LoadKeys(cfg.TokenKeyDir, time.Now())
	if err != nil {
		return nil, fmt.Errorf("token keys: %w", err)
	}
	to := ks.Options(cfg.TokenIssuer)
	to.Audience = cfg.TokenAudience
	to.Lifetime = cfg.TokenLifetime
	if d.tokens, err = issuer.New(to); err != nil {
		return nil, err
	}
	log.Info("token keys loaded", "dir", cfg.TokenKeyDir, "kid", d.tokens.KeyID(), "recent", len(ks.Recent),
		"issuer", d.tokens.IssuerName(), "audience", d.tokens.Audience())
	if d.auditLg, err = d.openAudit(ctx, env); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	d.closers = append(d.closers, d.auditLg.Close)
	if d.metrics, err = metrics.New(d.registry, metrics.Options{TEEs: schemes.Names()}); err != nil {
		return nil, err
	}
	if err := d.openCollateral(ctx, env); err != nil {
		return nil, err
	}
	verifiers, err := d.verifiers()
	if err != nil {
		return nil, err
	}
	if err := d.registerCollateral(verifiers); err != nil {
		return nil, err
	}
	ck, ckFrom, err := AuditContextKey(cfg.Audit.ContextKeyFile, cfg.DataDir, cfg.Dev)
	if err != nil {
		return nil, err
	}
	log.Info("audit context key loaded", "from", ckFrom)
	if d.revoked, err = d.openRevocations(ctx, env); err != nil {
		return nil, err
	}
	duties, err := d.openDuties(ctx, env)
	if err != nil {
		return nil, err
	}
	d.consent = duties.consent
	shadow, err := d.openShadow(ctx)
	if err != nil {
		return nil, err
	}
	d.svc, err = service.New(service.Options{
		Verifiers: verifiers, Policies: pols, Keys: keys,
		Audit: d.auditLg, Nonces: nonces, Tokens: d.tokens, Logger: log, Metrics: d.metrics, ContextKey: ck,
		Baseline: policies.Baseline{AllowDebug: d.cfg.Dev}, // debug guests only in --dev
		Consent:  duties.consent, BreakGlass: duties.breakGlass, Shadow: shadow,
		Revocations: d.releaseChecks(verifiers), // revocations, then collateral rechecks (collateral.go)
		TCB:         tcbUpdaters(verifiers),     // Intel TCB status recomputed at release (collateral.go)
	})
	if err != nil {
		return nil, err
	}
	if cfg.TLS.ClientCAFile != "" {
		var reloader service.PolicyReloader
		if d.policies != nil {
			reloader = d.policies
		}
		d.admin, err = service.NewAdmin(service.AdminOptions{Keys: keys, Policies: reloader, Audit: d.auditLg,
			LogOrigin: d.auditLg.Origin(), LogVerifierKey: d.auditLg.VerifierKey(), LogTilesPath: "/audit/",
			Caller: adminCaller, Logger: log, Revocations: d.revoked, Collateral: d.collateralImporter(),
			Consent: duties.consent, BreakGlass: duties.breakGlass, ContextKey: ck, Identity: adminIdentity})
		if err != nil {
			return nil, err
		}
	}
	return d, nil
}

// openAudit opens the configured audit log.
func (d *Daemon) openAudit(ctx context.Context, env Env) (auditLog, error) {
	if d.cfg.Audit.Backend == "postgres" {
		dsn, err := d.auditDSN(env)
		if err != nil {
			return nil, err
		}
		key, err := postgres.ReadKeyFile(d.cfg.Audit.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("audit.key_file: %w", err)
		}
		l, err := postgres.Open(ctx, postgres.Options{DSN: dsn, Key: key})
		if err != nil {
			return nil, err
		}
		if o := d.cfg.Audit.Origin; o != "" && l.Origin() != o {
			l.Close()
			return nil, fmt.Errorf("audit.key_file is the key of the log %q, but audit.origin is %q: make the key with trustctl audit keygen --origin %s", l.Origin(), o, o)
		}
		d.log.Info("audit log open (postgres)", "origin", l.Origin(), "verifier_key", l.VerifierKey())
		return l, nil
	}
	dir := filepath.Join(d.cfg.DataDir, "audit")
	l, err := posix.Open(ctx, posix.Options{Dir: dir, Origin: d.cfg.Audit.Origin})
	if err != nil {
		return nil, err
	}
	d.log.Info("audit log open", "dir", dir, "origin", l.Origin(), "verifier_key", l.VerifierKey())
	return l, nil
}

// auditDSN returns the PostgreSQL connection string of the audit log (backend postgres).
func (d *Daemon) auditDSN(env Env) (string, error) {
	dsn := env.AuditDSN
	if d.cfg.Audit.DSNFile != "" {
		b, err := keyfile.Read(d.cfg.Audit.DSNFile, "audit.dsn_file")
		if err != nil {
			return "", err
		}
		dsn = strings.TrimSpace(string(b))
	}
	if dsn == "" {
		return "", fmt.Errorf("audit: backend postgres needs dsn_file or %s", AuditDSNEnv)
	}
	return dsn, nil
}

// policyState returns where the policy rollback high-water mark lives: with the PostgreSQL
// audit log, a table in the same database, which every replica and every restart sees (a pod's
// data directory may be an emptyDir); otherwise the state file in the data directory, which
// must be persistent storage. A mark already in the state file is carried over to the table,
// so that switching to PostgreSQL never lowers it.
func (d *Daemon) policyState(ctx context.Context, env Env) (policies.StateStore, error) {
	file := &policies.FileState{Path: filepath.Join(d.cfg.DataDir, "policy-state.json")}
	if d.cfg.Audit.Backend != "postgres" {
		return file, nil
	}
	dsn, err := d.auditDSN(env)
	if err != nil {
		return nil, err
	}
	pg, err := pgstate.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("policy state: %w", err)
	}
	d.closers = append(d.closers, pg.Close)
	old, err := file.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy state: %w", err)
	}
	if old.Version > 0 {
		if _, err := pg.Advance(ctx, old); err != nil {
			return nil, fmt.Errorf("policy state: %w", err)
		}
	}
	return pg, nil
}

// openPolicies opens the policy store: signed bundles with rollback protection, reloaded on
// change. In dev mode unsigned directories (and single files) are accepted.
func (d *Daemon) openPolicies(ctx context.Context, env Env) (service.PolicySource, error) {
	fi, err := os.Stat(d.cfg.Policy)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if !fi.IsDir() {
		if !d.cfg.Dev {
			return nil, errors.New("policy: must be a signed bundle directory outside dev mode")
		}
		b, err := policies.Load(d.cfg.Policy)
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		d.log.Warn("policy file loaded unsigned (dev mode)", "path", d.cfg.Policy, "digest", fmt.Sprintf("%x", b.Digest))
		return service.StaticPolicies{Bundle: b}, nil
	}
	state, err := d.policyState(ctx, env)
	if err != nil {
		return nil, err
	}
	o := policies.StoreOptions{Dir: d.cfg.Policy, Threshold: d.cfg.PolicyThreshold, AllowUnsigned: d.cfg.Dev, State: state}
	if d.cfg.PolicyTrustKeys != "" {
		pem, err := os.ReadFile(d.cfg.PolicyTrustKeys)
		if err != nil {
			return nil, fmt.Errorf("policy_trust_keys: %w", err)
		}
		if o.Keys, err = policies.ParseTrustKeys(pem); err != nil {
			return nil, fmt.Errorf("policy_trust_keys: %w", err)
		}
	}
	o.OnReload = func(b *policies.Bundle, err error) {
		if err != nil {
			d.log.Error("policy reload failed; keeping the active bundle", "err", err)
			return
		}
		d.log.Info("policy bundle reloaded", "version", b.Version, "digest", fmt.Sprintf("%x", b.Digest), "policies", len(b.Policies))
	}
	st, err := policies.OpenStore(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	b := st.Current()
	d.log.Info("policy bundle loaded", "path", d.cfg.Policy, "version", b.Version, "policies", len(b.Policies), "digest", fmt.Sprintf("%x", b.Digest))
	d.policies = st
	return st, nil
}

// Run serves until ctx is cancelled, then stops gracefully: in-flight releases finish.
func (d *Daemon) Run(ctx context.Context) error {
	srv, ts, unary, err := d.grpcServer()
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", d.cfg.Listen)
	if err != nil {
		return err
	}
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	errc := make(chan error, 3)
	api, err := d.apiServer(srv, hs, ts, unary)
	if err != nil {
		return err
	}
	go func() { errc <- api.serve(lis) }()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(pb.Trust_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	d.log.Info("trustd serving", "grpc", lis.Addr().String(), "http_json", lis.Addr().String(), "tls", ts != nil, "admin", d.admin != nil)
	if d.policies != nil {
		go d.policies.Watch(ctx, d.cfg.PolicyReloadInterval)
	}
	go d.revoked.Run(ctx)
	go d.consent.Run(ctx)
	go d.refreshCollateral(ctx)
	go d.coll.imports.run(ctx)
	fctx, fcancel := context.WithCancel(ctx)
	flushed := make(chan struct{})
	go func() { d.svc.RunUnverifiedFlusher(fctx); close(flushed) }()
	defer func() { fcancel(); <-flushed }() // the last summaries are written before the log closes
	go d.watchKeyStores(ctx, hs)
	var httpSrvs []*http.Server
	serveHTTP := func(addr string, h http.Handler, what string) error {
		// Timeouts as on the API port: an idle keep-alive connection must not hold a file
		// descriptor for ever (a client opening many of them would exhaust them).
		hsrv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Minute, MaxHeaderBytes: 64 << 10}
		hl, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		if ts != nil {
			hsrv.TLSConfig = ts.Config()
			go func() { errc <- hsrv.ServeTLS(hl, "", "") }()
		} else {
			go func() { errc <- hsrv.Serve(hl) }()
		}
		httpSrvs = append(httpSrvs, hsrv)
		d.log.Info("trustd http serving", "what", what, "http", hl.Addr().String(), "tls", ts != nil)
		return nil
	}
	if d.cfg.HTTPListen != "" {
		mux := http.NewServeMux()
		// The log holds no secrets and is meant to be mirrored: auditors verify it against the
		// published verifier key, not against the transport.
		mux.Handle("/audit/", http.StripPrefix("/audit", d.auditLg.Handler()))
		mux.Handle("/.well-known/jwks.json", issuer.JWKSHandler(func() *issuer.Issuer { return d.tokens }))
		if d.cfg.MetricsListen == "" {
			mux.Handle("/metrics", metrics.Handler(d.registry))
		}
		if err := serveHTTP(d.cfg.HTTPListen, mux, "audit log, token keys"); err != nil {
			api.Close()
			return err
		}
	}
	if d.cfg.MetricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", metrics.Handler(d.registry))
		if err := serveHTTP(d.cfg.MetricsListen, mux, "metrics"); err != nil {
			api.Close()
			return err
		}
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		api.Close()
		srv.Stop()
		return err
	}
	d.log.Info("shutting down: finishing in-flight requests")
	hs.Shutdown()
	gctx, gcancel := context.WithTimeout(context.Background(), d.cfg.ShutdownGrace)
	if err := api.Shutdown(gctx); err != nil {
		d.log.Warn("shutdown grace exceeded: stopping with requests in flight", "grace", d.cfg.ShutdownGrace)
		api.Close()
	}
	gcancel()
	srv.Stop()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, h := range httpSrvs {
		h.Shutdown(sctx)
	}
	return nil
}

// grpcServer builds the server: TLS 1.3 from files (plaintext only in dev mode without
// certificates), then metrics, access log, limits and roles, in that order, so that refused
// calls are still counted and logged.
func (d *Daemon) grpcServer() (*grpc.Server, *tlsconfig.Server, []grpc.UnaryServerInterceptor, error) {
	var ts *tlsconfig.Server
	if d.cfg.TLS.CertFile != "" {
		var err error
		ts, err = tlsconfig.New(tlsconfig.Options{CertFile: d.cfg.TLS.CertFile, KeyFile: d.cfg.TLS.KeyFile,
			ClientCAFile: d.cfg.TLS.ClientCAFile, ClientCRLFile: d.cfg.TLS.ClientCRLFile, Logger: d.log})
		if err != nil {
			return nil, nil, nil, err
		}
	} else if !d.cfg.Dev {
		return nil, nil, nil, errors.New("tls: required outside dev mode")
	} else {
		d.log.Warn("DEV MODE: plaintext gRPC")
	}
	l := d.cfg.Limits
	lim, err := limits.New(limits.Options{Rate: l.Rate, Burst: l.Burst, MaxConcurrent: l.MaxConcurrent,
		MaxRecvMsgSize: l.MaxRecvMsgBytes, MaxSendMsgSize: l.MaxSendMsgBytes, RequestTimeout: l.RequestTimeout, Observer: d.metrics,
		Exempt: []string{healthpb.Health_Check_FullMethodName}})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("limits: %w", err)
	}
	rules := tlsconfig.Rules{
		// Health's Check and List only: Watch is a stream that would hold a slot of the
		// concurrency cap for the whole request timeout, so a few callers could starve all.
		Public:      append(tlsconfig.Methods(&pb.Trust_ServiceDesc), healthpb.Health_Check_FullMethodName, healthpb.Health_List_FullMethodName),
		Roles:       AdminRoles(),
		TrustDomain: d.cfg.TLS.TrustDomain,
	}
	if ts != nil {
		rules.Revocation = ts
	}
	if d.cfg.Dev {
		// Server reflection lists the API to grpcurl and friends: in dev mode only.
		rules.Public = append(rules.Public, reflectionMethods()...)
	}
	az, err := tlsconfig.NewAuthorizer(rules)
	if err != nil {
		return nil, nil, nil, err
	}
	unary := []grpc.UnaryServerInterceptor{d.metrics.UnaryInterceptor(), metrics.AccessLog(metrics.AccessLogOptions{Logger: d.log}),
		lim.UnaryInterceptor(), az.UnaryInterceptor()}
	opts := append(lim.ServerOptions(),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(d.metrics.StreamInterceptor(), lim.StreamInterceptor(), az.StreamInterceptor()))
	if ts != nil {
		// The workload-API port makes the TLS handshake itself (split.go).
		opts = append(opts, grpc.Creds(handshakenTLS{}))
	}
	srv := grpc.NewServer(opts...)
	pb.RegisterTrustServer(srv, d.svc)
	if d.admin != nil {
		pb.RegisterAdminServer(srv, d.admin)
	}
	if d.cfg.Dev {
		reflection.Register(srv)
	}
	return srv, ts, unary, nil
}

// AdminRoles is the access table of the admin API: each role may call its methods and nothing
// else.
func AdminRoles() map[string][]tlsconfig.Role {
	return map[string][]tlsconfig.Role{
		pb.Admin_CreateKey_FullMethodName:       {tlsconfig.Operator},
		pb.Admin_RotateKey_FullMethodName:       {tlsconfig.Operator},
		pb.Admin_PutSecret_FullMethodName:       {tlsconfig.Operator},
		pb.Admin_ReloadPolicies_FullMethodName:  {tlsconfig.SecurityTeam},
		pb.Admin_GetPolicyStatus_FullMethodName: {tlsconfig.SecurityTeam},
		pb.Admin_GetLogInfo_FullMethodName:      {tlsconfig.Auditor},
		// Patient-data duties (service/admin_duties.go).
		pb.Admin_RegisterConsentKey_FullMethodName: {tlsconfig.ConsentAdmin},
		pb.Admin_WithdrawConsent_FullMethodName:    {tlsconfig.ConsentAdmin},
		pb.Admin_RequestBreakGlass_FullMethodName:  {tlsconfig.BreakGlass},
		pb.Admin_ApproveBreakGlass_FullMethodName:  {tlsconfig.BreakGlass},
		pb.Admin_ListBreakGlass_FullMethodName:     {tlsconfig.BreakGlass, tlsconfig.Auditor},
		pb.Admin_ReviewBreakGlass_FullMethodName:   {tlsconfig.BreakGlass, tlsconfig.Auditor},
		pb.Admin_RequestShred_FullMethodName:       {tlsconfig.Operator},
		pb.Admin_ApproveShred_FullMethodName:       {tlsconfig.Operator},
		pb.Admin_Revoke_FullMethodName:             {tlsconfig.SecurityTeam},
		pb.Admin_ListRevocations_FullMethodName:    {tlsconfig.SecurityTeam},
		pb.Admin_ImportCollateral_FullMethodName:   {tlsconfig.SecurityTeam},
	}
}

// adminIdentity is the person behind an admin call for two-person rules: the certificate
// subject, so that two certificates of one person count as one.
func adminIdentity(ctx context.Context) string {
	if c, ok := tlsconfig.CallerFrom(ctx); ok {
		return c.Subject
	}
	return "unknown"
}

// adminCaller names the administrator for audit records: role, certificate subject and serial.
func adminCaller(ctx context.Context) string {
	if c, ok := tlsconfig.CallerFrom(ctx); ok {
		return fmt.Sprintf("%s %s serial %s", c.Role, c.Subject, c.Serial)
	}
	return "unknown"
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
