package service

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/revoke"
)

// RevocationAdmin is what the admin API needs of the revocation set (*revoke.Set).
type RevocationAdmin interface {
	Add(ctx context.Context, r revoke.Revocation) (revoke.Revocation, error)
	List() ([]revoke.Revocation, time.Time)
}

// Revoke implements trustv1.AdminServer. The audit record (kind and value, never the free-text
// reason) is durable before the revocation is stored.
func (a *Admin) Revoke(ctx context.Context, req *pb.RevokeRequest) (*pb.RevokeResponse, error) {
	if a.o.Revocations == nil {
		return nil, status.Error(codes.FailedPrecondition, "revocations: not configured on this trustd")
	}
	r := revoke.Revocation{Kind: revoke.Kind(req.GetKind()), Value: req.GetValue(), TEE: req.GetTee(), Reason: req.GetReason(),
		By: a.o.Caller(ctx)}
	if err := r.Normalize(); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	name := string(r.Kind) + ":" + r.Value
	if r.TEE != "" {
		name = r.TEE + "/" + name
	}
	var added revoke.Revocation
	var storeErr error
	err := a.do(ctx, "admin.revoke", name, func() error {
		added, storeErr = a.o.Revocations.Add(ctx, r)
		return storeErr
	})
	if storeErr != nil {
		// Stored but not re-read is still enforced within one poll interval; say so.
		if added.ID != "" {
			return nil, status.Errorf(codes.Unavailable, "revocation %s stored, but this replica could not re-read the store: %v", added.ID, storeErr)
		}
		return nil, status.Errorf(codes.Unavailable, "revocation not stored: %v", storeErr)
	}
	if err != nil {
		return nil, err
	}
	return &pb.RevokeResponse{Revocation: revocationPB(added)}, nil
}

// ListRevocations implements trustv1.AdminServer.
func (a *Admin) ListRevocations(context.Context, *pb.ListRevocationsRequest) (*pb.ListRevocationsResponse, error) {
	if a.o.Revocations == nil {
		return nil, status.Error(codes.FailedPrecondition, "revocations: not configured on this trustd")
	}
	list, at := a.o.Revocations.List()
	resp := &pb.ListRevocationsResponse{RefreshedAt: timestamppb.New(at)}
	for _, r := range list {
		resp.Revocations = append(resp.Revocations, revocationPB(r))
	}
	return resp, nil
}

func revocationPB(r revoke.Revocation) *pb.Revocation {
	return &pb.Revocation{Id: r.ID, Kind: string(r.Kind), Value: r.Value, Tee: r.TEE, Reason: r.Reason,
		Created: timestamppb.New(r.Created), By: r.By}
}
