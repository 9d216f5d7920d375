package httpjson_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/kms"
	sdktoken "github.com/medicus-cloud/trust/sdk/token"
	"github.com/medicus-cloud/trust/seal"
)

// The whole workload flow over HTTP/JSON against a real service: challenge, attest (both token
// forms), a secret with the JWT, a data key with the CWT, unwrap, token keys, health; each call
// through the same interceptors as gRPC.
func TestJSONFlow(t *testing.T) {
	for _, suite := range []seal.Suite{seal.X25519, seal.MLKEM768X25519} {
		t.Run(suite.String(), func(t *testing.T) {
			e := newEnv(t)
			var ch pb.GetChallengeResponse
			if code, eb := e.call(t, "GetChallenge", &pb.GetChallengeRequest{}, &ch); eb != nil {
				t.Fatalf("GetChallenge: %d %+v", code, eb)
			}
			req, key := attestRequest(t, ch.GetNonce(), helloMeasurement, suite)
			var att pb.AttestResponse
			if _, eb := e.call(t, "Attest", req, &att); eb != nil {
				t.Fatalf("Attest: %+v", eb)
			}
			if att.GetVerdict() != "affirming" || len(att.GetToken()) == 0 || att.GetJwt() == "" {
				t.Fatalf("Attest: %v", &att)
			}
			var tk pb.GetTokenKeysResponse
			e.call(t, "GetTokenKeys", &pb.GetTokenKeysRequest{}, &tk)
			keys, err := sdktoken.FromTokenKeys(&tk)
			if err != nil {
				t.Fatal(err)
			}
			for _, tok := range [][]byte{att.GetToken(), []byte(att.GetJwt())} {
				if _, err := keys.Verify(tok, sdktoken.Options{Issuer: "https://trust.example", Audience: "medicus-trust"}); err != nil {
					t.Fatal(err)
				}
			}
			var sec pb.GetSecretResponse
			if _, eb := e.call(t, "GetSecret", &pb.GetSecretRequest{Token: []byte(att.GetJwt()), Name: "hello/api-token", RequestId: "r-1"}, &sec); eb != nil {
				t.Fatalf("GetSecret: %+v", eb)
			}
			empty, _ := kms.Context(nil).Canonical()
			pt, err := key.Open(seal.ReleaseAAD("r-1", "hello/api-token", empty), sec.GetSecret().GetCiphertext())
			if err != nil || string(pt) != "s3cr3t-api-token" {
				t.Fatalf("open secret: %v", err)
			}
			kc := map[string]string{"tenant": "uk-freiburg"}
			canon, _ := kms.Context(kc).Canonical()
			var dk pb.GenerateDataKeyResponse
			if _, eb := e.call(t, "GenerateDataKey", &pb.GenerateDataKeyRequest{Token: att.GetToken(), KeyName: "hello/records", Context: kc, RequestId: "r-2"}, &dk); eb != nil {
				t.Fatalf("GenerateDataKey: %+v", eb)
			}
			k1, err := key.Open(seal.ReleaseAAD("r-2", "hello/records", canon), dk.GetDataKey().GetCiphertext())
			if err != nil || len(k1) != 32 {
				t.Fatalf("open data key: %v", err)
			}
			var uw pb.UnwrapDataKeyResponse
			if _, eb := e.call(t, "UnwrapDataKey", &pb.UnwrapDataKeyRequest{Token: att.GetToken(), KeyName: "hello/records", WrappedKey: dk.GetWrappedKey(), Context: kc, RequestId: "r-3"}, &uw); eb != nil {
				t.Fatalf("UnwrapDataKey: %+v", eb)
			}
			k2, err := key.Open(seal.ReleaseAAD("r-3", "hello/records", canon), uw.GetDataKey().GetCiphertext())
			if err != nil || !bytes.Equal(k1, k2) {
				t.Fatalf("unwrap: %v", err)
			}
			code, body := post(t, e.base+"/grpc.health.v1.Health/Check", `{}`)
			var hr healthpb.HealthCheckResponse
			if code != 200 || protojson.Unmarshal(body, &hr) != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("health: %d %s", code, body)
			}
			seen := map[string]bool{}
			for len(e.calls) > 0 {
				seen[<-e.calls] = true
			}
			for _, m := range []string{pb.Trust_GetChallenge_FullMethodName, pb.Trust_Attest_FullMethodName, pb.Trust_GetSecret_FullMethodName,
				pb.Trust_GenerateDataKey_FullMethodName, pb.Trust_UnwrapDataKey_FullMethodName, pb.Trust_GetTokenKeys_FullMethodName,
				healthpb.Health_Check_FullMethodName} {
				if !seen[m] {
					t.Errorf("interceptors did not see %s", m)
				}
			}
		})
	}
}

func post(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes()
}

// Bad input gets the same status over HTTP/JSON as over gRPC, and a denial keeps its details,
// as JSON.
func TestJSONErrorsAsGRPC(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ch, err := e.rpc.GetChallenge(ctx, &pb.GetChallengeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := attestRequest(t, ch.GetNonce(), helloMeasurement, seal.X25519)
	att, err := e.rpc.Attest(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(att.GetJwt(), ".")
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	denied, _ := attestRequest(t, ch.GetNonce(), []byte("tampered"), seal.X25519)
	for _, tc := range []struct {
		name string
		// method and request, sent over both transports
		method string
		req    proto.Message
		code   codes.Code
		msg    string
	}{
		{"denied measurement", "Attest", denied, codes.PermissionDenied, "measurement"},
		{"JWT alg none", "GetSecret", &pb.GetSecretRequest{Token: []byte(none), Name: "hello/api-token"}, codes.Unauthenticated, "algorithm"},
		{"garbage token", "GetSecret", &pb.GetSecretRequest{Token: []byte("x"), Name: "hello/api-token"}, codes.Unauthenticated, "token"},
		{"not granted", "GetSecret", &pb.GetSecretRequest{Token: att.GetToken(), Name: "other/secret"}, codes.PermissionDenied, "grants"},
		{"bad request id", "GetSecret", &pb.GetSecretRequest{Token: att.GetToken(), Name: "hello/api-token", RequestId: "a b"}, codes.InvalidArgument, "request_id"},
		{"oversized", "Attest", &pb.AttestRequest{Nonce: ch.GetNonce(), Evidence: &pb.Evidence{Report: make([]byte, maxRecv)}}, codes.ResourceExhausted, ""},
		{"unknown token format", "Attest", withFormat(good, 9), codes.InvalidArgument, "token_format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gerr := invoke(ctx, e, tc.method, tc.req)
			if status.Code(gerr) != tc.code || !strings.Contains(status.Convert(gerr).Message(), tc.msg) {
				t.Fatalf("gRPC: %v, want %v containing %q", gerr, tc.code, tc.msg)
			}
			b, _ := protojson.Marshal(tc.req)
			httpCode, body := e.post(t, tc.method, b)
			eb := decodeErr(t, body)
			if codes.Code(eb.Code) != tc.code || !strings.Contains(eb.Message, tc.msg) || httpCode != httpStatus(tc.code) {
				t.Fatalf("JSON: HTTP %d %+v, want %v (HTTP %d) containing %q", httpCode, eb, tc.code, httpStatus(tc.code), tc.msg)
			}
			if tc.code == codes.PermissionDenied && tc.name == "denied measurement" {
				if len(eb.Details) != 1 || eb.Details[0]["@type"] != "type.googleapis.com/medicus.trust.v1.Denial" || eb.Details[0]["claim"] != "measurement" {
					t.Fatalf("denial details %+v", eb.Details)
				}
			}
		})
	}
	// Only JSON can say these; each is the clear status gRPC gives a bad message.
	for _, tc := range []struct {
		name, path, body string
		code             codes.Code
		msg              string
	}{
		{"unknown field", "/medicus.trust.v1.Trust/GetSecret", `{"name":"hello/api-token","admin":true}`, codes.InvalidArgument, `unknown field "admin"`},
		{"malformed", "/medicus.trust.v1.Trust/GetSecret", `{"name":`, codes.InvalidArgument, ""},
		{"trailing data", "/medicus.trust.v1.Trust/GetSecret", `{"name":"a"} {"name":"b"}`, codes.InvalidArgument, ""},
		{"wrong type", "/medicus.trust.v1.Trust/GetSecret", `{"name":7}`, codes.InvalidArgument, "name"},
		{"bad base64", "/medicus.trust.v1.Trust/GetSecret", `{"token":"***"}`, codes.InvalidArgument, "token"},
		{"oversized", "/medicus.trust.v1.Trust/GetSecret", `{"name":"` + strings.Repeat("a", maxRecv) + `"}`, codes.ResourceExhausted, "request body"},
		{"no such method", "/medicus.trust.v1.Trust/DeleteEverything", `{}`, codes.Unimplemented, "no such method"},
		{"admin not served", "/medicus.trust.v1.Admin/PutSecret", `{}`, codes.Unimplemented, "no such method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			httpCode, body := post(t, e.base+tc.path, tc.body)
			eb := decodeErr(t, body)
			if codes.Code(eb.Code) != tc.code || !strings.Contains(eb.Message, tc.msg) || httpCode != httpStatus(tc.code) {
				t.Fatalf("HTTP %d %+v, want %v containing %q", httpCode, eb, tc.code, tc.msg)
			}
		})
	}
	resp, err := http.Get(e.base + "/medicus.trust.v1.Trust/GetChallenge")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %s", resp.Status)
	}
}

func withFormat(r *pb.AttestRequest, f pb.TokenFormat) *pb.AttestRequest {
	c := proto.Clone(r).(*pb.AttestRequest)
	c.TokenFormat = f
	return c
}

func invoke(ctx context.Context, e *env, method string, req proto.Message) error {
	var err error
	switch r := req.(type) {
	case *pb.AttestRequest:
		_, err = e.rpc.Attest(ctx, r)
	case *pb.GetSecretRequest:
		_, err = e.rpc.GetSecret(ctx, r)
	default:
		panic(method)
	}
	return err
}

func httpStatus(c codes.Code) int { return runtime.HTTPStatusFromCode(c) }

func decodeErr(t *testing.T, body []byte) *errBody {
	t.Helper()
	var eb errBody
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return &eb
}
