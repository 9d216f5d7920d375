package service

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/breakglass"
	"github.com/medicus-cloud/trust/consent"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/policies"
)

// ConsentAdmin changes the consent registry (package consent).
type ConsentAdmin interface {
	RegisterKey(tenant, kid string, pub []byte) error
	Withdraw(tenant, id string, now time.Time) error
}

// Admin events of the patient-data duties.
const (
	EventRegisterConsentKey = "admin.register_consent_key"
	EventWithdrawConsent    = "admin.withdraw_consent"
	EventBreakGlassRequest  = "admin.break_glass_request"
	EventBreakGlassApprove  = "admin.break_glass_approve"
	EventBreakGlassReview   = "admin.break_glass_review"
	EventShredRequest       = "admin.shred_request"
	EventShredApprove       = "admin.shred_approve"
)

// dutyStatus maps the errors of consent and two-person requests to statuses; nil for others.
func dutyStatus(err error) error {
	switch {
	case errors.Is(err, breakglass.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, breakglass.ErrSelfApproval), errors.Is(err, breakglass.ErrSelfReview):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, breakglass.ErrAlreadyApproved), errors.Is(err, breakglass.ErrLapsed), errors.Is(err, breakglass.ErrReviewed):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, breakglass.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, breakglass.ErrTooMany):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, kms.ErrShredded):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, kms.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	}
	return nil
}

// tenantDigest is the keyed digest of a tenant for admin records: tenants are context values,
// which the public log never carries raw.
func (a *Admin) tenantDigest(tenant string) string {
	c, _ := kms.Context{audit.TenantField: tenant}.Canonical()
	return a.o.ContextKey.Digest(tenant, c)
}

func (a *Admin) needConsent() error {
	if a.o.Consent == nil {
		return status.Error(codes.FailedPrecondition, "consent: this trustd has no consent registry")
	}
	return nil
}

func (a *Admin) needBreakGlass() error {
	if a.o.BreakGlass == nil {
		return status.Error(codes.FailedPrecondition, "break-glass: this trustd keeps no two-person requests")
	}
	return nil
}

func checkTenant(t string) error {
	if err := consent.CheckTenant(t); err != nil {
		return status.Errorf(codes.InvalidArgument, "tenant: %v", err)
	}
	return nil
}

// RegisterConsentKey implements trustv1.AdminServer.
func (a *Admin) RegisterConsentKey(ctx context.Context, req *pb.RegisterConsentKeyRequest) (*pb.RegisterConsentKeyResponse, error) {
	if err := a.needConsent(); err != nil {
		return nil, err
	}
	if err := checkTenant(req.GetTenant()); err != nil {
		return nil, err
	}
	if err := consent.CheckID(req.GetKeyId()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "key_id: %v", err)
	}
	if _, err := consent.ParsePublicKey(req.GetPublicKey()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "public_key: %v", err)
	}
	err := a.doWith(ctx, EventRegisterConsentKey, "consent-key:"+req.GetKeyId(), func(r *audit.Record) {
		r.ContextDigest = a.tenantDigest(req.GetTenant())
	}, func() error { return a.o.Consent.RegisterKey(req.GetTenant(), req.GetKeyId(), req.GetPublicKey()) })
	if err != nil {
		return nil, err
	}
	return &pb.RegisterConsentKeyResponse{}, nil
}

// WithdrawConsent implements trustv1.AdminServer. The withdrawal is durable before the call
// answers; the next release presenting the statement is denied.
func (a *Admin) WithdrawConsent(ctx context.Context, req *pb.WithdrawConsentRequest) (*pb.WithdrawConsentResponse, error) {
	if err := a.needConsent(); err != nil {
		return nil, err
	}
	if err := checkTenant(req.GetTenant()); err != nil {
		return nil, err
	}
	if err := consent.CheckID(req.GetStatementId()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "statement_id: %v", err)
	}
	err := a.doWith(ctx, EventWithdrawConsent, "", func(r *audit.Record) {
		r.ContextDigest, r.ConsentID = a.tenantDigest(req.GetTenant()), req.GetStatementId()
	}, func() error { return a.o.Consent.Withdraw(req.GetTenant(), req.GetStatementId(), a.o.Now()) })
	if err != nil {
		return nil, err
	}
	return &pb.WithdrawConsentResponse{}, nil
}

// RequestBreakGlass implements trustv1.AdminServer. The reason stays in the admin-only state;
// the record carries its digest, keyed per tenant like context digests.
func (a *Admin) RequestBreakGlass(ctx context.Context, req *pb.RequestBreakGlassRequest) (*pb.RequestBreakGlassResponse, error) {
	if err := a.needBreakGlass(); err != nil {
		return nil, err
	}
	if err := checkTenant(req.GetTenant()); err != nil {
		return nil, err
	}
	if err := kms.CheckName(req.GetKeyName()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "key_name: %v", err)
	}
	if err := breakglass.CheckReason(req.GetReason()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "reason: %v", err)
	}
	d := time.Duration(req.GetDurationSeconds()) * time.Second
	if d <= 0 || d > breakglass.MaxDuration {
		return nil, status.Errorf(codes.InvalidArgument, "duration_seconds: %d, want 1 to %d", req.GetDurationSeconds(), int(breakglass.MaxDuration.Seconds()))
	}
	id := breakglass.NewID(breakglass.KindBreakGlass)
	err := a.doWith(ctx, EventBreakGlassRequest, "data_key:"+req.GetKeyName(), func(r *audit.Record) {
		r.BreakGlassID = id
		r.ContextDigest = a.tenantDigest(req.GetTenant())
		r.ReasonDigest = a.o.ContextKey.Digest(req.GetTenant(), []byte(req.GetReason()))
	}, func() error {
		_, err := a.o.BreakGlass.Request(breakglass.Entry{ID: id, Kind: breakglass.KindBreakGlass, Tenant: req.GetTenant(),
			KeyName: req.GetKeyName(), Reason: req.GetReason(), Duration: d}, a.o.Identity(ctx), a.o.Now())
		return err
	})
	if err != nil {
		return nil, err
	}
	return &pb.RequestBreakGlassResponse{Id: id}, nil
}

// ApproveBreakGlass implements trustv1.AdminServer: another person than the requester, once.
func (a *Admin) ApproveBreakGlass(ctx context.Context, req *pb.ApproveBreakGlassRequest) (*pb.ApproveBreakGlassResponse, error) {
	if err := a.needBreakGlass(); err != nil {
		return nil, err
	}
	var e *breakglass.Entry
	err := a.doWith(ctx, EventBreakGlassApprove, "", func(r *audit.Record) { r.BreakGlassID = req.GetId() }, func() error {
		var err error
		e, err = a.o.BreakGlass.Approve(req.GetId(), breakglass.KindBreakGlass, a.o.Identity(ctx), a.o.Now(), nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &pb.ApproveBreakGlassResponse{ExpiresAt: timestamppb.New(e.Expires(policies.MaxBreakGlass))}, nil
}

// ListBreakGlass implements trustv1.AdminServer: read-only, like the other status calls.
func (a *Admin) ListBreakGlass(_ context.Context, req *pb.ListBreakGlassRequest) (*pb.ListBreakGlassResponse, error) {
	if err := a.needBreakGlass(); err != nil {
		return nil, err
	}
	entries, err := a.o.BreakGlass.List(req.GetAll())
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "break-glass state: %v", err)
	}
	out := &pb.ListBreakGlassResponse{}
	for _, e := range entries {
		b := &pb.BreakGlass{Id: e.ID, Tenant: e.Tenant, KeyName: e.KeyName, Reason: e.Reason, RequestedBy: e.RequestedBy,
			RequestedAt: timestamppb.New(e.RequestedAt), ApprovedBy: e.ApprovedBy, DurationSeconds: uint32(e.Duration / time.Second),
			Releases: e.Releases, Outcome: e.Outcome, ReviewedBy: e.ReviewedBy}
		if e.Approved() {
			b.ApprovedAt, b.ExpiresAt = timestamppb.New(e.ApprovedAt), timestamppb.New(e.Expires(policies.MaxBreakGlass))
		}
		out.Entries = append(out.Entries, b)
	}
	return out, nil
}

// ReviewBreakGlass implements trustv1.AdminServer.
func (a *Admin) ReviewBreakGlass(ctx context.Context, req *pb.ReviewBreakGlassRequest) (*pb.ReviewBreakGlassResponse, error) {
	if err := a.needBreakGlass(); err != nil {
		return nil, err
	}
	if o := req.GetOutcome(); o != breakglass.Justified && o != breakglass.Unjustified {
		return nil, status.Errorf(codes.InvalidArgument, "outcome: %q, want %s or %s", o, breakglass.Justified, breakglass.Unjustified)
	}
	err := a.doWith(ctx, EventBreakGlassReview, "", func(r *audit.Record) {
		r.BreakGlassID, r.Outcome = req.GetId(), req.GetOutcome()
	}, func() error {
		_, err := a.o.BreakGlass.Review(req.GetId(), req.GetOutcome(), a.o.Identity(ctx), a.o.Now())
		return err
	})
	if err != nil {
		return nil, err
	}
	return &pb.ReviewBreakGlassResponse{}, nil
}

// RequestShred implements trustv1.AdminServer.
func (a *Admin) RequestShred(ctx context.Context, req *pb.RequestShredRequest) (*pb.RequestShredResponse, error) {
	if err := a.needBreakGlass(); err != nil {
		return nil, err
	}
	if _, ok := a.o.Keys.(kms.Shredder); !ok {
		return nil, status.Error(codes.FailedPrecondition, "shred: this key store cannot destroy single keys")
	}
	if err := kms.CheckName(req.GetKeyName()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "key_name: %v", err)
	}
	id := breakglass.NewID(breakglass.KindShred)
	err := a.doWith(ctx, EventShredRequest, "data_key:"+req.GetKeyName(), func(r *audit.Record) { r.BreakGlassID = id }, func() error {
		_, err := a.o.BreakGlass.Request(breakglass.Entry{ID: id, Kind: breakglass.KindShred, KeyName: req.GetKeyName()}, a.o.Identity(ctx), a.o.Now())
		return err
	})
	if err != nil {
		return nil, err
	}
	return &pb.RequestShredResponse{Id: id}, nil
}

// ApproveShred implements trustv1.AdminServer: a second operator approves, and the key store
// destroys the key before the approval is stored. An unknown key is NotFound and changes
// nothing.
func (a *Admin) ApproveShred(ctx context.Context, req *pb.ApproveShredRequest) (*pb.ApproveShredResponse, error) {
	if err := a.needBreakGlass(); err != nil {
		return nil, err
	}
	sh, ok := a.o.Keys.(kms.Shredder)
	if !ok {
		return nil, status.Error(codes.FailedPrecondition, "shred: this key store cannot destroy single keys")
	}
	err := a.doWith(ctx, EventShredApprove, "", func(r *audit.Record) { r.BreakGlassID = req.GetId() }, func() error {
		_, err := a.o.BreakGlass.Approve(req.GetId(), breakglass.KindShred, a.o.Identity(ctx), a.o.Now(), func(e *breakglass.Entry) error {
			return sh.ShredKey(ctx, e.KeyName)
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &pb.ApproveShredResponse{}, nil
}
