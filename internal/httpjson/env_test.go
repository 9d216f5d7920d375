package httpjson_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/ear/issuer"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/simguest"
	"github.com/medicus-cloud/trust/internal/httpjson"
	"github.com/medicus-cloud/trust/internal/limits"
	"github.com/medicus-cloud/trust/internal/trustdtest"
	"github.com/medicus-cloud/trust/internal/wire"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/seal"
)

// helloMeasurement is the simulated measurement that policies/examples/hello.yaml approves.
var helloMeasurement, _ = hex.DecodeString("6d656469637573207472757374206578616d706c652068656c6c6f20696d616765207631000000000000000000000000")

type memAudit struct {
	mu      sync.Mutex
	records []*audit.Record
}

func (m *memAudit) Append(_ context.Context, r *audit.Record) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.records = append(m.records, r)
	return uint64(len(m.records)), nil
}

// env is a real service (simulated TEE verifier, local keyring, hello policy) behind the one
// handler that serves gRPC and HTTP/JSON, as trustd serves it.
type env struct {
	base    string
	handler http.Handler
	rpc     pb.TrustClient
	tokens  *issuer.Issuer
	calls   chan string // full methods seen by the interceptor chain
}

const maxRecv = 256 << 10

func newEnv(t testing.TB) *env {
	t.Helper()
	bundle, err := policies.Load("../../policies/examples/hello.yaml")
	if err != nil {
		t.Fatal(err)
	}
	td := trustdtest.StartTB(t, trustdtest.Options{Bundle: bundle, NoListen: true, Audit: &memAudit{},
		DataKeys: []string{"hello/records"}, Secrets: map[string]string{"hello/api-token": "s3cr3t-api-token"},
		Issuer: issuer.Options{Issuer: "https://trust.example", Audience: "medicus-trust"}})
	svc, tokens := td.Service, td.Tokens
	e := &env{tokens: tokens, calls: make(chan string, 1024)}
	lim, err := limits.New(limits.Options{Rate: 1e6, Burst: 1e6, MaxConcurrent: 64, MaxRecvMsgSize: maxRecv})
	if err != nil {
		t.Fatal(err)
	}
	record := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		select {
		case e.calls <- info.FullMethod:
		default:
		}
		return h(ctx, req)
	}
	unary := []grpc.UnaryServerInterceptor{record, lim.UnaryInterceptor()}
	srv := grpc.NewServer(append(lim.ServerOptions(), grpc.ChainUnaryInterceptor(unary...))...)
	pb.RegisterTrustServer(srv, svc)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	h, err := httpjson.New(httpjson.Options{GRPC: srv, Trust: svc, Health: hs, Interceptors: unary, MaxRequestBytes: maxRecv})
	if err != nil {
		t.Fatal(err)
	}
	e.handler = h
	ts := httptest.NewUnstartedServer(h)
	ts.Config.Protocols = new(http.Protocols)
	ts.Config.Protocols.SetHTTP1(true)
	ts.Config.Protocols.SetUnencryptedHTTP2(true)
	ts.Start()
	t.Cleanup(ts.Close)
	e.base = ts.URL
	conn, err := grpc.NewClient(ts.Listener.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e.rpc = pb.NewTrustClient(conn)
	return e
}

// post sends a raw JSON body and returns the HTTP status and body.
func (e *env) post(t testing.TB, method string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post(e.base+"/medicus.trust.v1.Trust/"+method, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// call sends req as JSON and decodes the response into resp, or returns the error body.
func (e *env) call(t testing.TB, method string, req, resp proto.Message) (int, *errBody) {
	t.Helper()
	b, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	code, out := e.post(t, method, b)
	if code != http.StatusOK {
		var eb errBody
		if err := json.Unmarshal(out, &eb); err != nil {
			t.Fatalf("%s: HTTP %d, body %q: %v", method, code, out, err)
		}
		return code, &eb
	}
	if err := protojson.Unmarshal(out, resp); err != nil {
		t.Fatalf("%s: %v in %s", method, err, out)
	}
	return code, nil
}

// errBody is a google.rpc.Status as JSON.
type errBody struct {
	Code    int              `json:"code"`
	Message string           `json:"message"`
	Details []map[string]any `json:"details"`
}

// attestRequest makes a fresh workload key and simulated evidence for a challenge.
func attestRequest(t testing.TB, nonce, measurement []byte, suite seal.Suite) (*pb.AttestRequest, *enclave.Key) {
	t.Helper()
	key, err := enclave.NewKey(suite)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := simguest.NewInsecure(simguest.Options{Measurement: measurement, SVN: 1}).Evidence(context.Background(), key.ReportData(nonce))
	if err != nil {
		t.Fatal(err)
	}
	return &pb.AttestRequest{Nonce: nonce, Evidence: wire.EvidenceToPB(ev), WorkloadKey: wire.WorkloadKeyToPB(key.Public())}, key
}
