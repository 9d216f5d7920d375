package service_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/enclave"
)

// Attest returns the forms the caller asks for (both by default), and every release call
// accepts either form.
func TestTokenFormats(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	for _, tc := range []struct {
		format   pb.TokenFormat
		cwt, jwt bool
	}{
		{pb.TokenFormat_TOKEN_FORMAT_UNSPECIFIED, true, true},
		{pb.TokenFormat_TOKEN_FORMAT_CWT, true, false},
		{pb.TokenFormat_TOKEN_FORMAT_JWT, false, true},
	} {
		t.Run(tc.format.String(), func(t *testing.T) {
			resp, _, err := h.attestRaw(t, func(r *pb.AttestRequest, _ *enclave.Key) { r.TokenFormat = tc.format })
			if err != nil {
				t.Fatal(err)
			}
			if (len(resp.GetToken()) > 0) != tc.cwt || (resp.GetJwt() != "") != tc.jwt {
				t.Fatalf("cwt %d bytes, jwt %q", len(resp.GetToken()), resp.GetJwt())
			}
			for form, tok := range map[string][]byte{"cwt": resp.GetToken(), "jwt": []byte(resp.GetJwt())} {
				if len(tok) == 0 {
					continue
				}
				if _, err := h.rpc.GetSecret(ctx, &pb.GetSecretRequest{Token: tok, Name: "hello/api-token"}); err != nil {
					t.Errorf("GetSecret with the %s: %v", form, err)
				}
				if _, err := h.rpc.GenerateDataKey(ctx, &pb.GenerateDataKeyRequest{Token: tok, KeyName: "hello/records"}); err != nil {
					t.Errorf("GenerateDataKey with the %s: %v", form, err)
				}
			}
		})
	}
	_, _, err := h.attestRaw(t, func(r *pb.AttestRequest, _ *enclave.Key) { r.TokenFormat = 7 })
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "token_format") {
		t.Fatalf("unknown token format: %v", err)
	}
}
