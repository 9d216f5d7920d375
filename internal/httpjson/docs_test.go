package httpjson_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/internal/docvec"
	"github.com/medicus-cloud/trust/internal/httpjson"
)

var update = flag.Bool("update", false, "rewrite the test vectors in docs/")

const httpDoc = "../../docs/http.md"

// TestDocsVectors checks docs/http.md: its requests decode to the messages they describe, and
// its error body and status table are what trustd writes.
func TestDocsVectors(t *testing.T) {
	st, _ := status.New(codes.PermissionDenied, "measurement is 74616d7065726564, expected one of [6d65…]").WithDetails(
		&pb.Denial{Claim: "measurement", Seen: "74616d7065726564", Expected: "one of [6d65…]", Policy: "hello",
			Reason: "measurement is 74616d7065726564, expected one of [6d65…]"})
	denial, err := httpjson.Marshaler().Marshal(st.Proto())
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	for _, c := range []codes.Code{codes.InvalidArgument, codes.Unauthenticated, codes.PermissionDenied, codes.NotFound,
		codes.ResourceExhausted, codes.Unavailable, codes.Unimplemented, codes.Internal} {
		fmt.Fprintf(&table, "%-18s %2d  HTTP %d\n", c, c, runtime.HTTPStatusFromCode(c))
	}
	// protojson varies its white space on purpose: documents hold the compact form.
	want := map[string]string{"denial-error": compact(t, denial), "status-codes": strings.TrimSpace(table.String())}
	if *update {
		if err := docvec.Update(httpDoc, want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := docvec.Read(httpDoc)
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("docs/http.md vector %s:\n%s\nwant\n%s", name, got[name], w)
		}
	}
	for name, msg := range map[string]proto.Message{
		"attest-request": &pb.AttestRequest{Nonce: []byte{1, 2, 3, 4}, Evidence: &pb.Evidence{Tee: pb.TEE_TEE_INSECURE_SIMULATED, Report: []byte("simulated")},
			WorkloadKey: &pb.WorkloadKey{Kem: 32, Kdf: 1, Aead: 2, PublicKey: bytes.Repeat([]byte{9}, 32)}, TokenFormat: pb.TokenFormat_TOKEN_FORMAT_JWT},
		"generate-data-key-request": &pb.GenerateDataKeyRequest{Token: []byte("eyJhbGciOiJFUzI1NiJ9..."), KeyName: "hello/records",
			Context: map[string]string{"tenant": "uk-freiburg", "case": "c-1042"}, RequestId: "r-1"},
	} {
		dec := msg.ProtoReflect().New().Interface()
		if err := httpjson.Unmarshal([]byte(got[name]), dec); err != nil || !proto.Equal(dec, msg) {
			t.Errorf("docs/http.md vector %s decodes to %v (%v), want %v", name, dec, err, msg)
		}
		if enc, _ := httpjson.Marshaler().Marshal(msg); compact(t, enc) != got[name] {
			t.Errorf("docs/http.md vector %s: trustd writes %s", name, enc)
		}
	}
}

func compact(t *testing.T, b []byte) string {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.String()
}
