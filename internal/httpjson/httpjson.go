// Package httpjson serves the workload API (package service) as HTTP/JSON beside gRPC, on the
// same listener, TLS and limits: one http.Handler sends gRPC requests (HTTP/2, content type
// application/grpc) to the grpc.Server and everything else to a grpc-gateway mux, where each
// call runs through the same unary interceptors as over gRPC (metrics, access log, limits,
// roles) before it reaches the service. docs/http.md specifies the JSON form.
//
// grpc-gateway rather than connect-go: trustd keeps grpc-go's server, its interceptors and
// its transport limits unchanged, and the gateway's errors are google.rpc.Status as JSON, with
// the Denial detail as a JSON object a client reads without knowing protobuf (Connect's JSON
// errors carry details as base64 protobuf).
package httpjson

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/medicus-cloud/trust/api/trustv1"
)

// DefaultMaxRequestBytes bounds a JSON request body when Options.MaxRequestBytes is zero.
const DefaultMaxRequestBytes = 4 << 20

// Options configure a Handler.
type Options struct {
	// GRPC serves the gRPC requests (a *grpc.Server).
	GRPC http.Handler
	// Trust is the workload API; Health answers /grpc.health.v1.Health/Check.
	Trust  pb.TrustServer
	Health healthpb.HealthServer
	// Interceptors run around every JSON call, in order, as the gRPC server runs them.
	Interceptors []grpc.UnaryServerInterceptor
	// MaxRequestBytes bounds a JSON request body, as the gRPC server's MaxRecvMsgSize bounds a
	// message: larger is ResourceExhausted.
	MaxRequestBytes int
	Logger          *slog.Logger
}

// New returns the handler of a listener that speaks gRPC and HTTP/JSON.
func New(o Options) (http.Handler, error) {
	if o.Trust == nil || o.GRPC == nil {
		return nil, errors.New("httpjson: GRPC and Trust are required")
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, Marshaler()),
		// Only what the caller sends in the body counts; no HTTP header becomes gRPC metadata.
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithRoutingErrorHandler(routingError),
	)
	chain := Chain(o.Interceptors...)
	if err := pb.RegisterTrustHandlerServer(context.Background(), mux, &intercepted{srv: o.Trust, chain: chain}); err != nil {
		return nil, err
	}
	if o.Health != nil {
		if err := mux.HandlePath(http.MethodPost, healthpb.Health_Check_FullMethodName, healthCheck(mux, o.Health, chain)); err != nil {
			return nil, err
		}
	}
	return &handler{o: o, json: mux}, nil
}

type handler struct {
	o    Options
	json *runtime.ServeMux
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		h.o.GRPC.ServeHTTP(w, r)
		return
	}
	// The caller as gRPC sees it, for the limits (per address) and the roles (certificates).
	p := &peer.Peer{Addr: remoteAddr(r.RemoteAddr)}
	if r.TLS != nil {
		p.AuthInfo = credentials.TLSInfo{State: *r.TLS, CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}
	}
	r = r.WithContext(peer.NewContext(r.Context(), p))
	if r.Method == http.MethodPost {
		body, err := readBody(r, h.o.MaxRequestBytes)
		if err != nil {
			runtime.HTTPError(r.Context(), h.json, Marshaler(), w, r, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	h.json.ServeHTTP(w, r)
}

// readBody reads at most limit bytes: more is ResourceExhausted, as gRPC answers a message over
// MaxRecvMsgSize.
func readBody(r *http.Request, limit int) ([]byte, error) {
	if r.ContentLength > int64(limit) {
		return nil, status.Errorf(codes.ResourceExhausted, "request body: %d bytes, at most %d", r.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "request body: %v", err)
	}
	if len(b) > limit {
		return nil, status.Errorf(codes.ResourceExhausted, "request body: more than %d bytes", limit)
	}
	return b, nil
}

func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	var err error
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", "POST")
		err = &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: status.Errorf(codes.Unimplemented, "%s %s: only POST", r.Method, r.URL.Path)}
	case http.StatusNotFound:
		err = status.Errorf(codes.Unimplemented, "%s: no such method (POST /medicus.trust.v1.Trust/<Method>)", r.URL.Path)
	default:
		err = &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: status.Error(codes.InvalidArgument, http.StatusText(httpStatus))}
	}
	runtime.HTTPError(ctx, mux, m, w, r, err)
}

type strAddr string

func (a strAddr) Network() string { return "tcp" }
func (a strAddr) String() string  { return string(a) }

func remoteAddr(s string) net.Addr {
	if ap, err := net.ResolveTCPAddr("tcp", s); err == nil && ap.IP != nil {
		return ap
	}
	return strAddr(s)
}

// Marshaler is the JSON codec of the API: protojson, field names in lowerCamelCase, unknown
// fields and trailing data refused.
func Marshaler() runtime.Marshaler {
	return &strictJSON{JSONPb: runtime.JSONPb{UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false}}}
}

type strictJSON struct{ runtime.JSONPb }

func (s *strictJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(b)) == 0 {
			return io.EOF // an empty body is the empty message
		}
		m, ok := v.(proto.Message)
		if !ok {
			return fmt.Errorf("cannot decode into %T", v)
		}
		return Unmarshal(b, m)
	})
}

// Unmarshal decodes one JSON request as the API does.
func Unmarshal(b []byte, m proto.Message) error {
	return protojson.UnmarshalOptions{DiscardUnknown: false, RecursionLimit: 32}.Unmarshal(b, m)
}

// Chain composes unary interceptors as grpc.ChainUnaryInterceptor does: the first is outermost.
func Chain(is ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		var next func(i int) grpc.UnaryHandler
		next = func(i int) grpc.UnaryHandler {
			if i == len(is) {
				return handler
			}
			return func(ctx context.Context, req any) (any, error) { return is[i](ctx, req, info, next(i+1)) }
		}
		return next(0)(ctx, req)
	}
}

func healthCheck(mux *runtime.ServeMux, hs healthpb.HealthServer, chain grpc.UnaryServerInterceptor) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		m := Marshaler()
		req := &healthpb.HealthCheckRequest{}
		if err := m.NewDecoder(r.Body).Decode(req); err != nil && !errors.Is(err, io.EOF) {
			runtime.HTTPError(r.Context(), mux, m, w, r, status.Errorf(codes.InvalidArgument, "%v", err))
			return
		}
		info := &grpc.UnaryServerInfo{Server: hs, FullMethod: healthpb.Health_Check_FullMethodName}
		resp, err := chain(r.Context(), req, info, func(ctx context.Context, req any) (any, error) {
			return hs.Check(ctx, req.(*healthpb.HealthCheckRequest))
		})
		if err != nil {
			runtime.HTTPError(r.Context(), mux, m, w, r, err)
			return
		}
		runtime.ForwardResponseMessage(r.Context(), mux, m, w, r, resp.(proto.Message))
	}
}

// intercepted runs the interceptor chain around each method of the workload API.
type intercepted struct {
	pb.UnimplementedTrustServer
	srv   pb.TrustServer
	chain grpc.UnaryServerInterceptor
}

func call[Req, Resp any](ctx context.Context, i *intercepted, method string, req Req, f func(context.Context, Req) (Resp, error)) (Resp, error) {
	info := &grpc.UnaryServerInfo{Server: i.srv, FullMethod: method}
	resp, err := i.chain(ctx, req, info, func(ctx context.Context, r any) (any, error) { return f(ctx, r.(Req)) })
	if err != nil {
		var zero Resp
		return zero, err
	}
	return resp.(Resp), nil
}

func (i *intercepted) GetChallenge(ctx context.Context, r *pb.GetChallengeRequest) (*pb.GetChallengeResponse, error) {
	return call(ctx, i, pb.Trust_GetChallenge_FullMethodName, r, i.srv.GetChallenge)
}

func (i *intercepted) Attest(ctx context.Context, r *pb.AttestRequest) (*pb.AttestResponse, error) {
	return call(ctx, i, pb.Trust_Attest_FullMethodName, r, i.srv.Attest)
}

func (i *intercepted) GetSecret(ctx context.Context, r *pb.GetSecretRequest) (*pb.GetSecretResponse, error) {
	return call(ctx, i, pb.Trust_GetSecret_FullMethodName, r, i.srv.GetSecret)
}

func (i *intercepted) GenerateDataKey(ctx context.Context, r *pb.GenerateDataKeyRequest) (*pb.GenerateDataKeyResponse, error) {
	return call(ctx, i, pb.Trust_GenerateDataKey_FullMethodName, r, i.srv.GenerateDataKey)
}

func (i *intercepted) UnwrapDataKey(ctx context.Context, r *pb.UnwrapDataKeyRequest) (*pb.UnwrapDataKeyResponse, error) {
	return call(ctx, i, pb.Trust_UnwrapDataKey_FullMethodName, r, i.srv.UnwrapDataKey)
}

func (i *intercepted) GetTokenKeys(ctx context.Context, r *pb.GetTokenKeysRequest) (*pb.GetTokenKeysResponse, error) {
	return call(ctx, i, pb.Trust_GetTokenKeys_FullMethodName, r, i.srv.GetTokenKeys)
}
