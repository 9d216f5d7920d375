package service_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/collateral"
	"github.com/medicus-cloud/trust/service"
)

// olderContent is an importer whose verifiers refuse the bundle's collateral as older than the
// collateral in use (a bundle that would take back a TCB recovery).
type olderContent struct{}

func (olderContent) OpenBundle(data []byte) (*service.OpenedBundle, error) {
	return &service.OpenedBundle{Bundle: &collateral.Bundle{Issued: time.Unix(1, 0)}, Data: data, KeyID: "op", Digest: "00"}, nil
}

func (olderContent) ApplyBundle(context.Context, *service.OpenedBundle) (bool, error) {
	return false, fmt.Errorf("loading the bundle: tdx collateral: tcb-info.json: %w: tcbEvaluationDataNumber 17, newest seen 18", attest.ErrOlderCollateral)
}

// TestImportCollateralOlderContent: a bundle whose collateral is older than the collateral in
// use is refused as FailedPrecondition, as a bundle issued before the last import is: retrying
// it (Unavailable) cannot succeed.
func TestImportCollateralOlderContent(t *testing.T) {
	h := start(t)
	a, err := service.NewAdmin(service.AdminOptions{Keys: h.keys, Audit: h.audit, Collateral: olderContent{},
		Caller: func(context.Context) string { return "security-team CN=alice serial 1" }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.ImportCollateral(context.Background(), &pb.ImportCollateralRequest{Bundle: []byte("x")})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("%v, want FailedPrecondition", err)
	}
}
