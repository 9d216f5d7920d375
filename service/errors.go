package service

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/policies"
)

// toStatus maps package errors to gRPC status codes (DESIGN.md "Errors"). Anything unknown is
// Internal with a generic message: unknown errors never reach the client verbatim.
func toStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err // already a status (consent.go)
	}
	var d *policies.Denial
	switch {
	case errors.Is(err, kms.ErrShredded):
		return status.Error(codes.FailedPrecondition, "key was shredded: what it wrapped is unreadable for good")
	case errors.As(err, &d):
		st := status.New(codes.PermissionDenied, d.Error())
		if det, derr := st.WithDetails(&pb.Denial{Claim: d.Claim, Seen: d.Seen, Expected: d.Expected, Policy: d.Policy, Reason: d.Error()}); derr == nil {
			st = det
		}
		return st.Err()
	case errors.Is(err, attest.ErrMalformed):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, attest.ErrNotAuthentic):
		st := status.New(codes.PermissionDenied, err.Error())
		var ae *attest.Error
		if errors.As(err, &ae) {
			if det, derr := st.WithDetails(&pb.Denial{Claim: ae.Field, Reason: err.Error()}); derr == nil {
				st = det
			}
		}
		return st.Err()
	case errors.Is(err, attest.ErrUnavailable):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, kms.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, kms.ErrInvalidName), errors.Is(err, kms.ErrBadContext), errors.Is(err, kms.ErrBadWrapped):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, kms.ErrUnavailable), errors.Is(err, kms.ErrDenied):
		return status.Error(codes.Unavailable, "key store unavailable: nothing was released")
	case errors.Is(err, errAttestAgain):
		return status.Error(codes.Unauthenticated, err.Error())
	case errors.Is(err, errNoPolicy):
		return status.Error(codes.Unavailable, err.Error())
	}
	return status.Error(codes.Internal, "internal error: nothing was released")
}

// DenialOf extracts the Denial from a PermissionDenied status error, if it carries one.
func DenialOf(err error) *pb.Denial {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if den, ok := d.(*pb.Denial); ok {
			return den
		}
	}
	return nil
}
