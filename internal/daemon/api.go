package daemon

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	"github.com/medicus-cloud/trust/internal/httpjson"
	"github.com/medicus-cloud/trust/internal/limits"
	"github.com/medicus-cloud/trust/internal/tlsconfig"
)

// apiListener serves gRPC and HTTP/JSON on the one workload-API listener.
type apiListener struct {
	*http.Server
	tls bool
}

// apiServer wraps the gRPC server and the JSON form of the same API in one HTTP server: TLS 1.3
// as configured (h2 and http/1.1), or in dev mode plaintext HTTP/1.1 and HTTP/2 without TLS
// (what gRPC clients with insecure credentials speak). The transport bounds are those of
// limits.ServerOptions.
func (d *Daemon) apiServer(srv *grpc.Server, hs *health.Server, ts *tlsconfig.Server, unary []grpc.UnaryServerInterceptor) (*apiListener, error) {
	h, err := httpjson.New(httpjson.Options{GRPC: srv, Trust: d.svc, Health: hs, Interceptors: unary,
		MaxRequestBytes: d.cfg.Limits.MaxRecvMsgBytes, Logger: d.log})
	if err != nil {
		return nil, err
	}
	hsrv := &http.Server{Handler: h, ReadHeaderTimeout: limits.DefaultHandshakeTimeout, IdleTimeout: 5 * time.Minute,
		MaxHeaderBytes: 64 << 10, Protocols: new(http.Protocols),
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: limits.DefaultMaxStreamsPerConn, SendPingTimeout: 2 * time.Minute, PingTimeout: 20 * time.Second}}
	hsrv.Protocols.SetHTTP1(true)
	hsrv.Protocols.SetHTTP2(true)
	if ts != nil {
		c := ts.Config()
		c.NextProtos = []string{"h2", "http/1.1"}
		hsrv.TLSConfig = c
	} else {
		hsrv.Protocols.SetUnencryptedHTTP2(true)
	}
	return &apiListener{Server: hsrv, tls: ts != nil}, nil
}

func (a *apiListener) serve(l net.Listener) error {
	var err error
	if a.tls {
		err = a.ServeTLS(l, "", "")
	} else {
		err = a.Serve(l)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown waits for in-flight calls (gRPC and JSON) until ctx ends.
func (a *apiListener) Shutdown(ctx context.Context) error { return a.Server.Shutdown(ctx) }

func reflectionMethods() []string {
	return append(tlsconfig.Methods(&reflectionv1.ServerReflection_ServiceDesc), tlsconfig.Methods(&reflectionv1alpha.ServerReflection_ServiceDesc)...)
}
