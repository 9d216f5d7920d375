package service

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/breakglass"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/secret"
)

// PolicyReloader is a policy source that can be told to reload now.
type PolicyReloader interface {
	PolicySource
	Reload(ctx context.Context) error
}

// AdminOptions wire an Admin service. Keys and Audit are required; a nil Policies makes the
// policy calls FailedPrecondition (a dev-mode single file is not reloadable).
type AdminOptions struct {
	Keys     kms.Admin
	Policies PolicyReloader
	Audit    AuditLog
	// Log describes the audit log for auditors.
	LogOrigin, LogVerifierKey, LogTilesPath string
	// Caller names who made a call for the audit record (from the client certificate). Nil
	// records the peer address only.
	Caller func(ctx context.Context) string
	Logger *slog.Logger
	Now    func() time.Time
	// Patient-data duties (admin_duties.go): the consent registry, the two-person requests, the
	// context key that digests tenants and reasons in records, and Identity, the person behind a
	// call (the certificate subject) that two-person rules compare. Nil Consent or BreakGlass
	// makes their calls FailedPrecondition.
	Consent    ConsentAdmin
	BreakGlass *breakglass.Store
	ContextKey *audit.ContextKey
	Identity   func(ctx context.Context) string
	// Revocations serves Revoke and ListRevocations; nil makes them FailedPrecondition.
	Revocations RevocationAdmin
	// Collateral serves ImportCollateral; nil (no collateral_bundle.keys_file) makes it
	// FailedPrecondition.
	Collateral CollateralImporter
}

// Admin implements trustv1.AdminServer. Role checks happen in the transport's interceptor; this
// type assumes the caller was admitted for the method.
type Admin struct {
	pb.UnimplementedAdminServer
	o AdminOptions
}

// MaxSecretSize bounds PutSecret.
const MaxSecretSize = 64 << 10

// NewAdmin returns an Admin service.
func NewAdmin(o AdminOptions) (*Admin, error) {
	if o.Keys == nil || o.Audit == nil {
		return nil, errors.New("service: admin needs keys and an audit log")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Caller == nil {
		o.Caller = caller
	}
	if o.Identity == nil {
		o.Identity = o.Caller
	}
	if o.ContextKey == nil {
		k := make([]byte, audit.ContextKeySize)
		rand.Read(k)
		o.ContextKey, _ = audit.NewContextKey(k)
	}
	return &Admin{o: o}, nil
}

// do records an admin action, then runs it. The action runs only once its record is durable:
// with the audit log down the call answers Unavailable and changes nothing. The record states
// who asked for what (verdict allow: the caller was admitted); if the action then fails, a
// second record with the same request ID and verdict error says why, written on a best-effort
// basis (the failed action changed nothing that needs it).
func (a *Admin) do(ctx context.Context, event, name string, act func() error) error {
	return a.doWith(ctx, event, name, nil, act)
}

// doWith is do with fill adding fields to the record (digests, IDs) before it is appended.
func (a *Admin) doWith(ctx context.Context, event, name string, fill func(*audit.Record), act func() error) error {
	rec := &audit.Record{Time: a.o.Now().UTC(), RequestID: newRequestID(), Event: event, Caller: a.o.Caller(ctx),
		Verdict: audit.VerdictAllow}
	if name != "" {
		rec.Names = []string{name}
	}
	if fill != nil {
		fill(rec)
	}
	if _, aerr := a.o.Audit.Append(ctx, rec); aerr != nil {
		a.o.Logger.Error("audit append failed for an admin action; not acting", "event", event, "err", aerr)
		return status.Error(codes.Unavailable, "audit log unavailable: nothing was changed")
	}
	err := act()
	if err != nil {
		fail := *rec
		fail.Time, fail.Verdict, fail.Reason = a.o.Now().UTC(), audit.VerdictError, err.Error()
		if _, aerr := a.o.Audit.Append(context.WithoutCancel(ctx), &fail); aerr != nil {
			a.o.Logger.Error("audit append failed for a failed admin action", "event", event, "err", aerr)
		}
	}
	a.o.Logger.Info("admin", "event", event, "name", name, "caller", rec.Caller, "request_id", rec.RequestID, "ok", err == nil)
	if err != nil {
		if errors.Is(err, kms.ErrExists) {
			return status.Error(codes.AlreadyExists, err.Error())
		}
		if st := dutyStatus(err); st != nil {
			return st
		}
		return toStatus(err)
	}
	return nil
}

// CreateKey implements trustv1.AdminServer.
func (a *Admin) CreateKey(ctx context.Context, req *pb.CreateKeyRequest) (*pb.CreateKeyResponse, error) {
	if err := kms.CheckName(req.GetName()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "name: %v", err)
	}
	err := a.do(ctx, "admin.create_key", req.GetName(), func() error { return a.o.Keys.CreateKey(ctx, req.GetName()) })
	if err != nil {
		return nil, err
	}
	return &pb.CreateKeyResponse{}, nil
}

// RotateKey implements trustv1.AdminServer.
func (a *Admin) RotateKey(ctx context.Context, req *pb.RotateKeyRequest) (*pb.RotateKeyResponse, error) {
	if err := kms.CheckName(req.GetName()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "name: %v", err)
	}
	err := a.do(ctx, "admin.rotate_key", req.GetName(), func() error { return a.o.Keys.RotateKey(ctx, req.GetName()) })
	if err != nil {
		return nil, err
	}
	return &pb.RotateKeyResponse{}, nil
}

// PutSecret implements trustv1.AdminServer. The value is never logged or audited.
func (a *Admin) PutSecret(ctx context.Context, req *pb.PutSecretRequest) (*pb.PutSecretResponse, error) {
	if err := kms.CheckName(req.GetName()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "name: %v", err)
	}
	if n := len(req.GetValue()); n == 0 || n > MaxSecretSize {
		return nil, status.Errorf(codes.InvalidArgument, "value: %d bytes, want 1 to %d", n, MaxSecretSize)
	}
	var v uint64
	err := a.do(ctx, "admin.put_secret", req.GetName(), func() error {
		var err error
		v, err = a.o.Keys.PutSecret(ctx, req.GetName(), secret.New(append([]byte(nil), req.GetValue()...)))
		return err
	})
	if err != nil {
		return nil, err
	}
	return &pb.PutSecretResponse{Version: v}, nil
}

// ReloadPolicies implements trustv1.AdminServer.
func (a *Admin) ReloadPolicies(ctx context.Context, _ *pb.ReloadPoliciesRequest) (*pb.ReloadPoliciesResponse, error) {
	if a.o.Policies == nil {
		return nil, status.Error(codes.FailedPrecondition, "policies: this trustd runs a fixed policy file (dev mode); nothing to reload")
	}
	var reloadErr error
	err := a.do(ctx, "admin.reload_policies", "", func() error {
		reloadErr = a.o.Policies.Reload(ctx)
		return reloadErr
	})
	if err != nil && reloadErr == nil {
		return nil, err // the audit log is down
	}
	if reloadErr != nil {
		// A bundle that does not verify or parse is the security team's to fix: say why; the
		// active bundle keeps serving.
		return nil, status.Errorf(codes.FailedPrecondition, "policy reload refused, the active bundle stays: %v", reloadErr)
	}
	return &pb.ReloadPoliciesResponse{Status: policyStatus(a.o.Policies.Current())}, nil
}

// GetPolicyStatus implements trustv1.AdminServer.
func (a *Admin) GetPolicyStatus(context.Context, *pb.GetPolicyStatusRequest) (*pb.GetPolicyStatusResponse, error) {
	if a.o.Policies == nil {
		return nil, status.Error(codes.FailedPrecondition, "policies: this trustd runs a fixed policy file (dev mode)")
	}
	return &pb.GetPolicyStatusResponse{Status: policyStatus(a.o.Policies.Current())}, nil
}

// GetLogInfo implements trustv1.AdminServer.
func (a *Admin) GetLogInfo(context.Context, *pb.GetLogInfoRequest) (*pb.GetLogInfoResponse, error) {
	return &pb.GetLogInfoResponse{Origin: a.o.LogOrigin, VerifierKey: a.o.LogVerifierKey, TilesPath: a.o.LogTilesPath}, nil
}

func policyStatus(b *policies.Bundle) *pb.PolicyStatus {
	if b == nil {
		return &pb.PolicyStatus{}
	}
	st := &pb.PolicyStatus{Version: b.Version, Digest: b.Digest}
	for _, p := range b.Policies {
		st.Policies = append(st.Policies, p.Metadata.Name)
	}
	return st
}
