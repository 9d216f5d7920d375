package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/metrics"
)

func TestAccessLog(t *testing.T) {
	token := []byte("eyJ-very-secret-token-bytes")
	sealed := []byte("sealed-data-key-bytes")
	tests := []struct {
		name      string
		req       any
		resp      any
		err       error
		level     string
		requestID string
		code      string
	}{
		{"release ok", &pb.GenerateDataKeyRequest{Token: token, KeyName: "t/records", RequestId: "rid-1"},
			&pb.GenerateDataKeyResponse{RequestId: "rid-1", DataKey: &pb.Sealed{Ciphertext: sealed}, WrappedKey: sealed}, nil, "DEBUG", "rid-1", "OK"},
		{"attest ok names the audit record", &pb.AttestRequest{Nonce: token},
			&pb.AttestResponse{RequestId: "rid-2", Token: token}, nil, "DEBUG", "rid-2", "OK"},
		{"denied", &pb.GetSecretRequest{Token: token, Name: "t/api", RequestId: "rid-3"}, nil,
			status.Error(codes.PermissionDenied, "t/api is not granted"), "INFO", "rid-3", "PermissionDenied"},
		{"key store down", &pb.UnwrapDataKeyRequest{Token: token, WrappedKey: sealed}, nil,
			status.Error(codes.Unavailable, "key store unavailable: nothing was released"), "WARN", "", "Unavailable"},
		{"rate limited", &pb.GetChallengeRequest{}, nil, status.Error(codes.ResourceExhausted, "rate limit"), "DEBUG", "", "ResourceExhausted"},
		{"plain error", &pb.GetChallengeRequest{}, nil, errors.New("boom"), "WARN", "", "Unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			t0 := time.Unix(1_800_000_000, 0)
			calls := 0
			clock := func() time.Time { calls++; return t0.Add(time.Duration(calls) * 3 * time.Millisecond) }
			ic := metrics.AccessLog(metrics.AccessLogOptions{Logger: log, Now: clock})
			resp, err := ic(context.Background(), tc.req, &grpc.UnaryServerInfo{FullMethod: "/medicus.trust.v1.Trust/X"},
				func(context.Context, any) (any, error) { return tc.resp, tc.err })
			if err != tc.err || (tc.resp != nil && resp != tc.resp) {
				t.Fatalf("the interceptor changed the call's result: %v, %v", resp, err)
			}
			var rec map[string]any
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatalf("log record %q: %v", buf.String(), err)
			}
			if rec["level"] != tc.level || rec["code"] != tc.code || rec["method"] != "/medicus.trust.v1.Trust/X" {
				t.Errorf("record %v: want level %s code %s", rec, tc.level, tc.code)
			}
			if got, _ := rec["request_id"].(string); got != tc.requestID {
				t.Errorf("request_id %q, want %q", got, tc.requestID)
			}
			if rec["duration"] != float64(3*time.Millisecond) {
				t.Errorf("duration %v, want 3ms", rec["duration"])
			}
			for _, secret := range [][]byte{token, sealed} {
				if strings.Contains(buf.String(), string(secret)) {
					t.Errorf("secret bytes in the log: %s", buf.String())
				}
			}
		})
	}
}

func TestAccessLogQuietAtInfo(t *testing.T) {
	var buf bytes.Buffer
	ic := metrics.AccessLog(metrics.AccessLogOptions{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	ic(context.Background(), &pb.GetChallengeRequest{}, &grpc.UnaryServerInfo{FullMethod: "/m/A"},
		func(context.Context, any) (any, error) { return &pb.GetChallengeResponse{}, nil })
	if buf.Len() != 0 {
		t.Errorf("a successful call was logged at the default Info level: %s", buf.String())
	}
	// The zero options are safe.
	metrics.AccessLog(metrics.AccessLogOptions{})(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/m/A"},
		func(context.Context, any) (any, error) { return nil, nil })
}
