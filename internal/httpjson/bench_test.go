package httpjson_test

import (
	"context"
	"testing"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/internal/benchratio"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/seal"
)

// BenchmarkRatioAttestReleaseHTTP compares one attest-plus-release round trip (challenge, fresh
// key and evidence, Attest, GenerateDataKey, open) over HTTP/JSON with the same over gRPC, both
// served by the one handler trustd serves: the cost of JSON and HTTP/1.1 over protobuf and
// HTTP/2.
func BenchmarkRatioAttestReleaseHTTP(b *testing.B) {
	ctx := context.Background()
	e := newEnv(b)
	kc := map[string]string{"tenant": "t"}
	canon, _ := kms.Context(kc).Canonical()
	overJSON := func(n int) {
		for range n {
			var ch pb.GetChallengeResponse
			e.call(b, "GetChallenge", &pb.GetChallengeRequest{}, &ch)
			req, key := attestRequest(b, ch.GetNonce(), helloMeasurement, seal.X25519)
			var att pb.AttestResponse
			if _, eb := e.call(b, "Attest", req, &att); eb != nil {
				b.Fatal(eb)
			}
			var dk pb.GenerateDataKeyResponse
			if _, eb := e.call(b, "GenerateDataKey", &pb.GenerateDataKeyRequest{Token: att.GetToken(), KeyName: "hello/records", Context: kc, RequestId: "r"}, &dk); eb != nil {
				b.Fatal(eb)
			}
			if _, err := key.Open(seal.ReleaseAAD("r", "hello/records", canon), dk.GetDataKey().GetCiphertext()); err != nil {
				b.Fatal(err)
			}
		}
	}
	overGRPC := func(n int) {
		for range n {
			ch, err := e.rpc.GetChallenge(ctx, &pb.GetChallengeRequest{})
			if err != nil {
				b.Fatal(err)
			}
			req, key := attestRequest(b, ch.GetNonce(), helloMeasurement, seal.X25519)
			att, err := e.rpc.Attest(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			dk, err := e.rpc.GenerateDataKey(ctx, &pb.GenerateDataKeyRequest{Token: att.GetToken(), KeyName: "hello/records", Context: kc, RequestId: "r"})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := key.Open(seal.ReleaseAAD("r", "hello/records", canon), dk.GetDataKey().GetCiphertext()); err != nil {
				b.Fatal(err)
			}
		}
	}
	benchratio.Time(b, "attest-release-http/attest-release-grpc", overJSON, overGRPC)
}
