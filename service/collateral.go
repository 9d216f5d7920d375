package service

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/collateral"
)

// OpenedBundle is a collateral bundle whose signature verified under an operator key, not yet
// applied.
type OpenedBundle struct {
	Bundle *collateral.Bundle
	// Data is the signed file as received; KeyID the operator key that signed it; Digest the
	// SHA-256 of Data in lowercase hex.
	Data          []byte
	KeyID, Digest string
}

// CollateralImporter is the imported collateral bundle of this trustd (internal/daemon).
type CollateralImporter interface {
	// OpenBundle verifies data under the operator keys; it changes nothing. Errors wrap
	// collateral.ErrMalformed or collateral.ErrBadSignature.
	OpenBundle(data []byte) (*OpenedBundle, error)
	// ApplyBundle makes b the collateral the offline verifiers use, unless it was issued before
	// the last import (collateral.ErrOlder). changed is false when b is already in use. On error
	// the collateral in use stays.
	ApplyBundle(ctx context.Context, b *OpenedBundle) (changed bool, err error)
}

// ImportCollateral implements trustv1.AdminServer. The bundle's signature is checked first (a
// bundle no operator signed changes nothing and is not an admin action); then the record (the
// bundle's digest, signing key and issue time, never its content) is durable before the bundle
// is applied.
func (a *Admin) ImportCollateral(ctx context.Context, req *pb.ImportCollateralRequest) (*pb.ImportCollateralResponse, error) {
	if a.o.Collateral == nil {
		return nil, status.Error(codes.FailedPrecondition, "collateral_bundle.keys_file: no operator keys are configured on this trustd, so it cannot verify a collateral bundle")
	}
	data := req.GetBundle()
	if n := len(data); n == 0 || n > collateral.MaxBundleSize {
		return nil, status.Errorf(codes.InvalidArgument, "bundle: %d bytes, want 1 to %d", n, collateral.MaxBundleSize)
	}
	b, err := a.o.Collateral.OpenBundle(data)
	switch {
	case errors.Is(err, collateral.ErrBadSignature):
		return nil, status.Errorf(codes.PermissionDenied, "bundle: %v", err)
	case errors.Is(err, collateral.ErrMalformed):
		return nil, status.Errorf(codes.InvalidArgument, "bundle: %v", err)
	case err != nil:
		return nil, status.Errorf(codes.Internal, "bundle: %v", err)
	}
	var changed bool
	var applyErr error
	fill := func(r *audit.Record) {
		r.Platform = map[string]string{"kid": b.KeyID, "sha256": b.Digest, "issued": b.Bundle.Issued.UTC().Format(time.RFC3339)}
	}
	err = a.doWith(ctx, "admin.import_collateral", "collateral-bundle:"+b.Digest, fill, func() error {
		changed, applyErr = a.o.Collateral.ApplyBundle(ctx, b)
		return applyErr
	})
	switch {
	case errors.Is(applyErr, collateral.ErrOlder):
		return nil, status.Errorf(codes.FailedPrecondition, "bundle: %v", applyErr)
	case errors.Is(applyErr, attest.ErrOlderCollateral): // its content is older than what is in use
		return nil, status.Errorf(codes.FailedPrecondition, "bundle: collateral bundle not applied, the collateral in use stays: %v", applyErr)
	case applyErr != nil:
		return nil, status.Errorf(codes.Unavailable, "collateral bundle not applied, the collateral in use stays: %v", applyErr)
	case err != nil:
		return nil, err // the audit log is down
	}
	resp := &pb.ImportCollateralResponse{Issued: timestamppb.New(b.Bundle.Issued), KeyId: b.KeyID, Sha256: b.Digest, Changed: changed}
	for _, it := range b.Bundle.Items() {
		resp.Items = append(resp.Items, &pb.CollateralItem{Tee: it.TEE, Platform: it.Platform, Files: uint32(it.Files)})
	}
	return resp, nil
}
