package daemon

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	"github.com/medicus-cloud/trust/internal/httpjson"
	"github.com/medicus-cloud/trust/internal/limits"
	"github.com/medicus-cloud/trust/internal/tlsconfig"
)

// apiListener serves gRPC and HTTP/JSON on the one workload-API listener (split.go sorts its
// connections).
type apiListener struct {
	*http.Server
	grpc *grpc.Server

	mu  sync.Mutex
	raw net.Listener
}

// apiServer serves the gRPC server and the JSON form of the same API on one port: TLS 1.3 as
// configured (h2 and http/1.1), or in dev mode plaintext HTTP/1.1 and HTTP/2 without TLS (what
// gRPC clients with insecure credentials speak). gRPC clients get grpc-go's own transport; the
// others an HTTP server that serves JSON and gRPC alike. The transport bounds are those of
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
	return &apiListener{Server: hsrv, grpc: srv}, nil
}

// serve sorts the connections of l between grpc-go's transport and net/http until l closes.
func (a *apiListener) serve(l net.Listener) error {
	a.mu.Lock()
	a.raw = l
	a.mu.Unlock()
	tc := a.TLSConfig // net/http changes its own as it starts: the splitter keeps a copy
	if tc != nil {
		tc = tc.Clone()
	}
	sp := newSplitter(l, tc, limits.DefaultHandshakeTimeout)
	errc := make(chan error, 2)
	go func() { errc <- a.grpc.Serve(sp.grpc) }()
	go func() { errc <- a.Serve(sp.http) }()
	err := sp.run()
	for range 2 {
		if e := <-errc; err == nil && e != nil && !errors.Is(e, http.ErrServerClosed) && !errors.Is(e, grpc.ErrServerStopped) && !errors.Is(e, net.ErrClosed) {
			err = e
		}
	}
	return err
}

func (a *apiListener) closeRaw() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.raw != nil {
		a.raw.Close()
	}
}

// Shutdown stops accepting and waits for in-flight calls (gRPC and JSON) until ctx ends.
func (a *apiListener) Shutdown(ctx context.Context) error {
	a.closeRaw()
	done := make(chan struct{})
	go func() { a.grpc.GracefulStop(); close(done) }()
	err := a.Server.Shutdown(ctx)
	select {
	case <-done:
	case <-ctx.Done():
		a.grpc.Stop()
		<-done
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// Close stops at once.
func (a *apiListener) Close() error {
	a.closeRaw()
	a.grpc.Stop()
	return a.Server.Close()
}

func reflectionMethods() []string {
	return append(tlsconfig.Methods(&reflectionv1.ServerReflection_ServiceDesc), tlsconfig.Methods(&reflectionv1alpha.ServerReflection_ServiceDesc)...)
}
