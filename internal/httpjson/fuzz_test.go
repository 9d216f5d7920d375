package httpjson_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/internal/httpjson"
)

// FuzzUnmarshal: every request message decodes from any JSON without panicking, and what
// decodes survives a round trip.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{`{}`, `{"nonce":"AAAA","evidence":{"tee":"TEE_INSECURE_SIMULATED","report":"AQID","collateral":{"a":"AA=="}},"workloadKey":{"kem":32,"kdf":1,"aead":2,"publicKey":"AA"},"tokenFormat":"TOKEN_FORMAT_JWT"}`,
		`{"token":"ZXlK","keyName":"hello/records","context":{"tenant":"t"},"requestId":"r"}`, `{"wrapped_key":"AAAA","context":{}}`, `[]`, `null`, `{"tee":1e400}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range []proto.Message{&pb.GetChallengeRequest{}, &pb.AttestRequest{}, &pb.GetSecretRequest{}, &pb.GenerateDataKeyRequest{},
			&pb.UnwrapDataKeyRequest{}, &pb.GetTokenKeysRequest{}} {
			if err := httpjson.Unmarshal(b, m); err != nil {
				continue
			}
			out, err := httpjson.Marshaler().Marshal(m)
			if err != nil {
				t.Fatalf("%T: decoded but does not encode: %v", m, err)
			}
			again := m.ProtoReflect().New().Interface()
			if err := httpjson.Unmarshal(out, again); err != nil || !proto.Equal(m, again) {
				t.Fatalf("%T: round trip of %q: %v", m, out, err)
			}
		}
	})
}

// FuzzHandler sends any body to every method of a real service: never a panic, never a 200
// without a JSON object, and errors always a google.rpc.Status.
func FuzzHandler(f *testing.F) {
	e := newEnv(f)
	h := e.handler
	for _, s := range []string{`{}`, `{"name":"hello/api-token","token":"ZXlKaGJHY2lPaUp1YjI1bEluMC5lMzAu"}`, `{"evidence":{"report":"AAAA"}}`, `{"nonce":`} {
		f.Add(uint8(0), []byte(s))
	}
	methods := []string{"GetChallenge", "Attest", "GetSecret", "GenerateDataKey", "UnwrapDataKey", "GetTokenKeys", "Nope"}
	f.Fuzz(func(t *testing.T, m uint8, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/medicus.trust.v1.Trust/"+methods[int(m)%len(methods)], bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("HTTP %d, body not a JSON object: %q", rec.Code, rec.Body.Bytes())
		}
		if _, ok := v["code"]; rec.Code != http.StatusOK && !ok {
			t.Fatalf("HTTP %d without a status: %q", rec.Code, rec.Body.Bytes())
		}
	})
}
