// Package service implements the trustd gRPC API: it checks nonces, verifies evidence through
// package attest, appraises claims through package policies, issues result tokens, and releases
// key material from a kms.KeyStore sealed to the attested workload key — each release only after
// its audit record is durable.
//
// It is the one place where errors become gRPC status codes (DESIGN.md "Errors").
package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/challenge"
	"github.com/medicus-cloud/trust/ear"
	"github.com/medicus-cloud/trust/ear/issuer"
	"github.com/medicus-cloud/trust/internal/wire"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/release"
	"github.com/medicus-cloud/trust/seal"
	"github.com/medicus-cloud/trust/secret"
)

// PolicySource supplies the active policy bundle; it may change between calls (hot reload).
type PolicySource interface {
	Current() *policies.Bundle
}

// StaticPolicies is a PolicySource that never changes.
type StaticPolicies struct{ Bundle *policies.Bundle }

// Current implements PolicySource.
func (s StaticPolicies) Current() *policies.Bundle { return s.Bundle }

// AuditLog records decisions. Append must return only once the record is durable.
type AuditLog interface {
	Append(ctx context.Context, r *audit.Record) (uint64, error)
}

// Recorder observes decisions for metrics (package metrics implements it). Nil records nothing.
// Kinds and outcomes are package release's: the same values the audit records carry.
type Recorder interface {
	Attestation(tee string, verdict release.Outcome)
	Release(kind release.Kind, outcome release.Outcome)
	UnverifiedEvidence(tee string)
	KeyStoreError(op string)
	AuditAppend(d time.Duration, err error)
	TCBGrace(tee string)
}

type nopRecorder struct{}

func (nopRecorder) Attestation(string, release.Outcome)   {}
func (nopRecorder) Release(release.Kind, release.Outcome) {}
func (nopRecorder) UnverifiedEvidence(string)             {}
func (nopRecorder) KeyStoreError(string)                  {}
func (nopRecorder) AuditAppend(time.Duration, error)      {}
func (nopRecorder) TCBGrace(string)                       {}

// timedAudit measures every append.
type timedAudit struct {
	AuditLog
	m   Recorder
	now func() time.Time
}

func (t timedAudit) Append(ctx context.Context, r *audit.Record) (uint64, error) {
	start := t.now()
	i, err := t.AuditLog.Append(ctx, r)
	t.m.AuditAppend(t.now().Sub(start), err)
	return i, err
}

// Limits on request fields. Larger inputs are InvalidArgument.
const (
	MaxReportSize       = 64 << 10
	MaxCertificatesSize = 64 << 10
	MaxCollateralSize   = 1 << 20
	MaxPublicKeySize    = 4 << 10
	MaxWrappedKeySize   = 4 << 10
)

// DefaultUnverifiedInterval is how long one summary of failed evidence from one source runs.
const DefaultUnverifiedInterval = time.Minute

// Options wire a Service. Every field but Logger, Metrics, Now, ContextKey and
// UnverifiedInterval is required.
type Options struct {
	// Verifiers, one per accepted TEE type. Evidence of other types is refused.
	Verifiers []attest.Verifier
	Policies  PolicySource
	Keys      kms.KeyStore
	Audit     AuditLog
	Nonces    *challenge.Issuer
	Tokens    *issuer.Issuer
	Logger    *slog.Logger
	Metrics   Recorder
	Now       func() time.Time
	// ContextKey keys the context digests of audit records (audit.ContextKey). Nil: a random
	// key for this process only, so that records reveal nothing but their digests cannot be
	// checked later; trustd always passes the deployment's key.
	ContextKey *audit.ContextKey
	// UnverifiedInterval is the length of one summary of Attest calls whose evidence failed
	// verification, per source; default DefaultUnverifiedInterval.
	UnverifiedInterval time.Duration
	// Baseline is checked before any policy; the zero value refuses debug guests (trustd --dev
	// sets AllowDebug).
	Baseline policies.Baseline
	// Consent checks consent statements and BreakGlass emergency releases, for grants whose
	// policy requires consent (consent.go). Nil: such grants are never released (fail closed).
	Consent    ConsentChecker
	BreakGlass BreakGlassUser
	// Shadow, when set, is a candidate bundle evaluated beside the active one (shadow.go): its
	// would-be decision goes into the record, the active bundle decides.
	Shadow PolicySource
	// Revocations, when set, refuses attestations and releases whose claims the security team
	// revoked (see package revoke).
	Revocations RevocationChecker
	// TCB, when set, recomputes the TCB status of a token's claims at each release from the
	// collateral in use now (tcbgrace.go); trustd composes the Intel verifiers' updaters.
	TCB ClaimsUpdater
}

// Service implements trustv1.TrustServer.
type Service struct {
	pb.UnimplementedTrustServer
	verifiers  map[attest.TEE]attest.Verifier
	o          Options
	log        *slog.Logger
	unverified *summarizer
	// noReappraise is set only by BenchmarkRatioReleaseReappraise (export_test.go) to measure
	// its baseline; nothing else can reach it.
	noReappraise bool
}

// New checks the options and returns a Service.
func New(o Options) (*Service, error) {
	if o.Policies == nil || o.Keys == nil || o.Audit == nil || o.Nonces == nil || o.Tokens == nil {
		return nil, errors.New("service: policies, keys, audit, nonces and tokens are all required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = nopRecorder{}
	}
	if o.ContextKey == nil {
		k := make([]byte, audit.ContextKeySize)
		rand.Read(k)
		o.ContextKey, _ = audit.NewContextKey(k)
	}
	if o.UnverifiedInterval <= 0 {
		o.UnverifiedInterval = DefaultUnverifiedInterval
	}
	o.Audit = timedAudit{AuditLog: o.Audit, m: o.Metrics, now: o.Now}
	s := &Service{verifiers: map[attest.TEE]attest.Verifier{}, o: o, log: o.Logger}
	s.unverified = newSummarizer(o.Audit, o.UnverifiedInterval, o.Now, o.Logger)
	for _, v := range o.Verifiers {
		s.verifiers[v.TEE()] = v
	}
	return s, nil
}

// GetChallenge implements trustv1.TrustServer.
func (s *Service) GetChallenge(context.Context, *pb.GetChallengeRequest) (*pb.GetChallengeResponse, error) {
	n, exp, err := s.o.Nonces.Issue()
	if err != nil {
		return nil, status.Error(codes.Unavailable, "cannot issue a nonce now")
	}
	return &pb.GetChallengeResponse{Nonce: n, ExpiresAt: timestamppb.New(exp)}, nil
}

// Attest implements trustv1.TrustServer.
func (s *Service) Attest(ctx context.Context, req *pb.AttestRequest) (*pb.AttestResponse, error) {
	if err := s.o.Nonces.Check(req.GetNonce()); err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "nonce: %v", err)
	}
	ev, pk, err := s.checkAttestRequest(req)
	if err != nil {
		return nil, err
	}
	if _, ok := pb.TokenFormat_name[int32(req.GetTokenFormat())]; !ok {
		return nil, status.Errorf(codes.InvalidArgument, "token_format: unknown value %d", req.GetTokenFormat())
	}
	// Evidence that does not verify issues nothing and may come from anyone: it is counted and
	// summarized per source (see summarizer), never recorded one call at a time, so that a
	// flood of forgeries cannot grow the public log.
	claims, err := s.verifiers[ev.TEE].Verify(ctx, ev, attest.Options{Now: s.o.Now()})
	if err != nil {
		v := verdictOf(err)
		s.o.Metrics.UnverifiedEvidence(string(ev.TEE))
		s.o.Metrics.Attestation(string(ev.TEE), v)
		s.unverified.note(ctx, caller(ctx), string(ev.TEE), v, err.Error())
		s.log.Debug("attest: evidence not verified", "tee", ev.TEE, "verdict", v, "reason", err.Error())
		return nil, toStatus(err)
	}
	rid := newRequestID()
	rec := &audit.Record{Time: s.o.Now().UTC(), RequestID: rid, Event: audit.EventAttest, TEE: string(ev.TEE), Caller: caller(ctx)}
	resp, err := s.attest(req, claims, pk, rec)
	if err != nil {
		rec.Verdict, rec.Reason = string(verdictOf(err)), err.Error()
	}
	if _, aerr := s.o.Audit.Append(ctx, rec); aerr != nil {
		s.log.Error("audit append failed; answering Unavailable", "request_id", rid, "err", aerr)
		return nil, status.Error(codes.Unavailable, "audit log unavailable: nothing was issued")
	}
	s.o.Metrics.Attestation(string(ev.TEE), release.Outcome(rec.Verdict))
	s.log.Info("attest", "request_id", rid, "tee", ev.TEE, "verdict", rec.Verdict, "policy", rec.Policy, "reason", rec.Reason)
	if err != nil {
		return nil, toStatus(err)
	}
	resp.RequestId = rid
	return resp, nil
}

func (s *Service) checkAttestRequest(req *pb.AttestRequest) (*attest.Evidence, *seal.PublicKey, error) {
	e := req.GetEvidence()
	if e == nil {
		return nil, nil, status.Error(codes.InvalidArgument, "evidence: missing")
	}
	switch {
	case len(e.GetReport()) == 0:
		return nil, nil, status.Error(codes.InvalidArgument, "evidence.report: empty")
	case len(e.GetReport()) > MaxReportSize:
		return nil, nil, status.Errorf(codes.InvalidArgument, "evidence.report: %d bytes, at most %d", len(e.GetReport()), MaxReportSize)
	case len(e.GetCertificates()) > MaxCertificatesSize:
		return nil, nil, status.Errorf(codes.InvalidArgument, "evidence.certificates: %d bytes, at most %d", len(e.GetCertificates()), MaxCertificatesSize)
	}
	total := 0
	for k, v := range e.GetCollateral() {
		total += len(k) + len(v)
	}
	if total > MaxCollateralSize {
		return nil, nil, status.Errorf(codes.InvalidArgument, "evidence.collateral: %d bytes, at most %d", total, MaxCollateralSize)
	}
	ev, err := wire.Evidence(e)
	if err != nil {
		return nil, nil, status.Errorf(codes.InvalidArgument, "evidence.tee: %v", err)
	}
	if _, ok := s.verifiers[ev.TEE]; !ok {
		hint := ""
		if ev.TEE == attest.InsecureSimulated {
			hint = " (simulated evidence is accepted only by a trustd started with --dev)"
		}
		return nil, nil, status.Errorf(codes.InvalidArgument, "evidence.tee: %s evidence is not accepted by this trustd%s", ev.TEE, hint)
	}
	wk := req.GetWorkloadKey()
	if wk == nil || len(wk.GetPublicKey()) == 0 {
		return nil, nil, status.Error(codes.InvalidArgument, "workload_key: missing")
	}
	if len(wk.GetPublicKey()) > MaxPublicKeySize {
		return nil, nil, status.Errorf(codes.InvalidArgument, "workload_key.public_key: %d bytes, at most %d", len(wk.GetPublicKey()), MaxPublicKeySize)
	}
	pk, err := seal.ParsePublicKey(wire.Suite(wk), wk.GetPublicKey())
	if err != nil {
		return nil, nil, status.Errorf(codes.InvalidArgument, "workload_key: %v", err)
	}
	return ev, pk, nil
}

func (s *Service) attest(req *pb.AttestRequest, claims *attest.Claims, pk *seal.PublicKey, rec *audit.Record) (*pb.AttestResponse, error) {
	rec.Platform = claims.Platform
	rec.Measurement = claims.Measurement.String()
	if len(claims.Measurements) > 0 {
		rec.Measurements = map[string]string{}
		for k, v := range claims.Measurements {
			rec.Measurements[k] = v.String()
		}
	}
	rec.Claims = recordedClaims(claims)
	want := attest.ReportData(req.GetNonce(), pk.Suite().ID(), pk.Bytes())
	// The scheme's verifier says how its evidence carries the binding (attest.BindingChecker);
	// by default Claims.ReportData is it.
	if err := attest.CheckBinding(s.verifiers[claims.TEE], claims, want); err != nil {
		claim, expected := "report_data", "SHA-512 binding of this request's nonce and workload key"
		var ae *attest.Error
		if errors.As(err, &ae) && ae.Field != "" {
			claim, expected = ae.Field, "a commitment to this request's nonce and workload key"
		}
		return nil, &policies.Denial{Claim: claim, Seen: claims.ReportData.String(), Expected: expected}
	}
	bundle := s.o.Policies.Current()
	if bundle == nil {
		return nil, fmt.Errorf("%w: no policy bundle loaded", errNoPolicy)
	}
	rec.PolicyDigest = hex.EncodeToString(bundle.Digest)
	s.shadowAttest(claims, rec)
	if err := s.o.Baseline.Check(claims); err != nil {
		return nil, err
	}
	dec, warning, err := s.evaluateAttest(bundle, claims) // bundle.Evaluate, with any TCB recovery grace
	if err != nil {
		return nil, err
	}
	rec.Policy = dec.Policy
	if s.o.Revocations != nil {
		if err := s.o.Revocations.Check(claims); err != nil {
			return nil, err
		}
	}
	s.warn(claims.TEE, warning, rec)
	appraisedClaims, err := encodeAppraised(claims)
	if err != nil {
		return nil, fmt.Errorf("encoding appraised claims: %w", err)
	}
	for _, g := range dec.Grants {
		rec.Names = append(rec.Names, string(g.Kind)+":"+g.Name)
	}
	s0 := pk.Suite()
	tc := &ear.Claims{
		TEE: string(claims.TEE), Measurement: claims.Measurement, Policy: dec.Policy, PolicyDigest: dec.Digest,
		Grants: dec.Grants, Platform: claims.Platform, Appraised: appraisedClaims,
		Confirmation: ear.Confirmation{KEM: s0.KEM, KDF: s0.KDF, AEAD: s0.AEAD, PublicKey: pk.Bytes()},
	}
	var cwt, jwt []byte
	var exp time.Time
	switch req.GetTokenFormat() {
	case pb.TokenFormat_TOKEN_FORMAT_CWT:
		cwt, exp, err = s.o.Tokens.Issue(tc)
	case pb.TokenFormat_TOKEN_FORMAT_JWT:
		jwt, exp, err = s.o.Tokens.IssueJWT(tc)
	default:
		cwt, jwt, exp, err = s.o.Tokens.IssueBoth(tc)
	}
	if err != nil {
		return nil, fmt.Errorf("issuing token: %w", err)
	}
	rec.Verdict = audit.VerdictAllow
	return &pb.AttestResponse{
		Verdict: ear.StatusAffirming, Claims: wire.ClaimsToPB(claims), Policy: dec.Policy, PolicyDigest: dec.Digest,
		Grants: wire.GrantsToPB(dec.Grants), Token: cwt, Jwt: string(jwt), ExpiresAt: timestamppb.New(exp),
	}, nil
}

// releaseCall is the common path of the three release calls: authorize, fetch, seal, audit,
// answer.
type releaseCall struct {
	event, name, requestID string
	kind                   release.Kind
	token                  []byte
	kc                     kms.Context
	consent                []byte
	breakGlassID           string
	// fetch gets the plaintext from the key store under the release's name and context, bound
	// once by release; it may set wrapped for the response.
	fetch func(ctx context.Context, b kms.Bound) (*secret.Bytes, error)
	// lease is set by reappraise.
	lease time.Time
}

func (s *Service) release(ctx context.Context, r *releaseCall) (rid string, sealed []byte, err error) {
	claims, err := s.o.Tokens.Verify(r.token)
	if err != nil {
		return "", nil, status.Errorf(codes.Unauthenticated, "token: %v", err)
	}
	rid = r.requestID
	if rid == "" {
		rid = newRequestID()
	} else if !requestIDRE.MatchString(rid) {
		return "", nil, status.Error(codes.InvalidArgument, "request_id: must be 1-64 characters of [A-Za-z0-9._-]")
	}
	field := "name"
	if r.kind.Grant() == release.GrantDataKey {
		field = "key_name"
	}
	// The name is checked and the context encoded once, here; the policy, the key store, the
	// seal's AAD and the audit record all use this binding.
	bound, err := kms.Bind(r.name, r.kc)
	switch {
	case errors.Is(err, kms.ErrInvalidName):
		return "", nil, status.Errorf(codes.InvalidArgument, "%s: %v", field, err)
	case err != nil:
		return "", nil, status.Errorf(codes.InvalidArgument, "context: %v", err)
	}
	if err := s.checkTenantStore(bound); err != nil {
		return "", nil, err
	}
	rec := &audit.Record{Time: s.o.Now().UTC(), RequestID: rid, Event: r.event, TEE: claims.TEE,
		Measurement: hex.EncodeToString(claims.Measurement), Platform: claims.Platform, Policy: claims.Policy,
		TokenPolicyDigest: hex.EncodeToString(claims.PolicyDigest), Names: []string{string(r.kind.Grant()) + ":" + r.name},
		Caller: caller(ctx), TokenID: claims.ID}
	if bound.Len() > 0 {
		// Keyed per deployment and tenant: the public log must not confirm a guessed case.
		tenant, _ := bound.Value(audit.TenantField)
		rec.ContextDigest = s.o.ContextKey.Digest(tenant, bound.Canonical())
		rec.TenantDigest = tenantDigest(s.o.ContextKey, bound)
	}
	s.shadowRelease(claims, r, rec)
	outcome := release.Allow
	sealed, err = s.releaseAuthorized(ctx, r, claims, rid, bound, rec)
	if err != nil {
		outcome = verdictOf(err)
		rec.Reason = err.Error()
	}
	rec.Verdict = string(outcome)
	if _, aerr := s.o.Audit.Append(ctx, rec); aerr != nil {
		s.log.Error("audit append failed; nothing released", "request_id", rid, "err", aerr)
		return "", nil, status.Error(codes.Unavailable, "audit log unavailable: nothing was released")
	}
	s.o.Metrics.Release(r.kind, outcome)
	if errors.Is(err, kms.ErrUnavailable) || errors.Is(err, kms.ErrDenied) {
		s.o.Metrics.KeyStoreError(r.event)
	}
	s.log.Info(r.event, "request_id", rid, "name", r.name, "verdict", rec.Verdict, "reason", rec.Reason)
	if err != nil {
		return "", nil, toStatus(err)
	}
	return rid, sealed, nil
}

// tenantStores is implemented by a key store that keeps some tenants' keys in stores of their
// own (kms/route): it names the tenant whose store holds a name.
type tenantStores interface {
	Tenant(name string) (owner string, routed bool)
}

// checkTenantStore refuses a context naming one tenant for a key held in another tenant's own
// store. The context's tenant decides whose consent keys are asked and whose records of
// processing the release lands in; a hospital's key must not serve, and be reported under,
// another hospital.
func (s *Service) checkTenantStore(b kms.Bound) error {
	ts, ok := s.o.Keys.(tenantStores)
	if !ok {
		return nil
	}
	owner, routed := ts.Tenant(b.Name())
	if t, named := b.Value(audit.TenantField); routed && named && t != owner {
		return status.Errorf(codes.InvalidArgument, "context.%s: the key is held in tenant %s's own key store; a context for another tenant cannot use it", audit.TenantField, owner)
	}
	return nil
}

func (s *Service) releaseAuthorized(ctx context.Context, r *releaseCall, claims *ear.Claims, rid string, bound kms.Bound, rec *audit.Record) ([]byte, error) {
	grant := r.kind.Grant()
	if !claims.Granted(grant, r.name) {
		return nil, &policies.Denial{Policy: claims.Policy, Claim: "grants", Seen: r.name,
			Expected: fmt.Sprintf("a %s granted to this workload", grant)}
	}
	// The token says what the bundle granted when it was issued; the current bundle decides
	// now. A reload that drops the image or the grant stops releases at once, and context
	// constraints (for example a tenant) are enforced on every release. The record names both
	// bundles.
	bundle := s.o.Policies.Current()
	if bundle == nil {
		return nil, fmt.Errorf("%w: no policy bundle loaded", errNoPolicy)
	}
	rec.PolicyDigest = hex.EncodeToString(bundle.Digest)
	if err := bundle.Revalidate(claims.Policy, attest.TEE(claims.TEE), claims.Measurement); err != nil {
		return nil, err
	}
	lease, err := s.reappraise(bundle, claims, rec)
	if err != nil {
		return nil, err
	}
	r.lease = lease
	if err := bundle.CheckContext(claims.Policy, grant, r.name, r.kc); err != nil {
		return nil, redactContext(err)
	}
	if req := bundle.Consent(claims.Policy, grant, r.name); req != nil {
		if err := s.checkConsent(claims.Policy, req, r, rec); err != nil {
			return nil, err
		}
	}
	c := claims.Confirmation
	pk, err := seal.ParsePublicKey(seal.Suite{KEM: c.KEM, KDF: c.KDF, AEAD: c.AEAD}, c.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("token confirmation key: %w", err)
	}
	// The encapsulation (the X25519 work of the seal) needs no plaintext: it runs while the key
	// store answers.
	type setup struct {
		s   *seal.Sealer
		err error
	}
	sc := make(chan setup, 1)
	go func() {
		s, err := pk.Sealer()
		sc <- setup{s, err}
	}()
	pt, err := r.fetch(ctx, bound)
	su := <-sc
	if err != nil {
		return nil, err
	}
	defer pt.Wipe()
	if su.err != nil {
		// A key that parsed at Attest may still take no seal (an X25519 low-order point, RFC
		// 9180 7.1.4). It is the client's fault, found here rather than by an encapsulation on
		// every Attest; the plaintext goes nowhere.
		return nil, attest.Malformed("workload_key", "the key bound at Attest takes no HPKE seal: %v", su.err)
	}
	return su.s.Seal(seal.ReleaseAAD(rid, bound.Name(), bound.Canonical()), pt.Reveal())
}

// redactContext keeps context values (tenants, case numbers, patient pseudonyms) out of a
// context denial: it becomes the client's status, the audit record's reason and a log line,
// and the log is public and permanent. The denial still names the field; the caller knows what
// it sent, and the security team knows what the policy allows.
func redactContext(err error) error {
	var d *policies.Denial
	if !errors.As(err, &d) || !strings.HasPrefix(d.Claim, "context.") {
		return err
	}
	seen := "a value the grant does not allow"
	if d.Seen == "absent" {
		seen = "absent"
	}
	return &policies.Denial{Policy: d.Policy, Claim: d.Claim, Seen: seen,
		Expected: "one of the values policy " + d.Policy + " allows for this grant"}
}

// GetSecret implements trustv1.TrustServer.
func (s *Service) GetSecret(ctx context.Context, req *pb.GetSecretRequest) (*pb.GetSecretResponse, error) {
	var version uint64
	rc := &releaseCall{
		event: audit.EventGetSecret, kind: release.Secret, name: req.GetName(), requestID: req.GetRequestId(), token: req.GetToken(),
		fetch: func(ctx context.Context, b kms.Bound) (*secret.Bytes, error) {
			sec, err := s.o.Keys.GetSecret(ctx, b.Name())
			if err != nil {
				return nil, err
			}
			version = sec.Version
			return sec.Value, nil
		},
	}
	rid, sealed, err := s.release(ctx, rc)
	if err != nil {
		return nil, err
	}
	return &pb.GetSecretResponse{RequestId: rid, Secret: &pb.Sealed{Ciphertext: sealed}, Version: version, LeaseExpiresAt: timestamppb.New(rc.lease)}, nil
}

// GenerateDataKey implements trustv1.TrustServer.
func (s *Service) GenerateDataKey(ctx context.Context, req *pb.GenerateDataKeyRequest) (*pb.GenerateDataKeyResponse, error) {
	var wrapped []byte
	kc := kms.Context(req.GetContext())
	rc := &releaseCall{
		event: audit.EventGenerateDataKey, kind: release.DataKey, name: req.GetKeyName(), requestID: req.GetRequestId(),
		token: req.GetToken(), kc: kc, consent: req.GetConsent(), breakGlassID: req.GetBreakGlassId(),
		fetch: func(ctx context.Context, b kms.Bound) (*secret.Bytes, error) {
			dk, err := s.o.Keys.GenerateDataKey(ctx, b)
			if err != nil {
				return nil, err
			}
			wrapped = dk.Wrapped
			return dk.Plaintext, nil
		},
	}
	rid, sealed, err := s.release(ctx, rc)
	if err != nil {
		return nil, err
	}
	return &pb.GenerateDataKeyResponse{RequestId: rid, DataKey: &pb.Sealed{Ciphertext: sealed}, WrappedKey: wrapped, LeaseExpiresAt: timestamppb.New(rc.lease)}, nil
}

// UnwrapDataKey implements trustv1.TrustServer.
func (s *Service) UnwrapDataKey(ctx context.Context, req *pb.UnwrapDataKeyRequest) (*pb.UnwrapDataKeyResponse, error) {
	if len(req.GetWrappedKey()) == 0 || len(req.GetWrappedKey()) > MaxWrappedKeySize {
		return nil, status.Errorf(codes.InvalidArgument, "wrapped_key: %d bytes, want 1 to %d", len(req.GetWrappedKey()), MaxWrappedKeySize)
	}
	kc := kms.Context(req.GetContext())
	rc := &releaseCall{
		event: audit.EventUnwrapDataKey, kind: release.Unwrap, name: req.GetKeyName(), requestID: req.GetRequestId(),
		token: req.GetToken(), kc: kc, consent: req.GetConsent(), breakGlassID: req.GetBreakGlassId(),
		fetch: func(ctx context.Context, b kms.Bound) (*secret.Bytes, error) {
			return s.o.Keys.UnwrapDataKey(ctx, b, req.GetWrappedKey())
		},
	}
	rid, sealed, err := s.release(ctx, rc)
	if err != nil {
		return nil, err
	}
	return &pb.UnwrapDataKeyResponse{RequestId: rid, DataKey: &pb.Sealed{Ciphertext: sealed}, LeaseExpiresAt: timestamppb.New(rc.lease)}, nil
}

// GetTokenKeys implements trustv1.TrustServer.
func (s *Service) GetTokenKeys(context.Context, *pb.GetTokenKeysRequest) (*pb.GetTokenKeysResponse, error) {
	var keys []wire.TokenKey
	for _, k := range s.o.Tokens.Published() {
		keys = append(keys, wire.TokenKey(k))
	}
	return wire.TokenKeysToPB(keys)
}

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func newRequestID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func caller(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

var errNoPolicy = errors.New("no policy")

func verdictOf(err error) release.Outcome {
	var d *policies.Denial
	if errors.As(err, &d) || errors.Is(err, attest.ErrNotAuthentic) || errors.Is(err, errBadConsent) {
		return release.Deny
	}
	return release.Error
}
