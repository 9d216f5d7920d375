package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// The workload-API port serves gRPC and HTTP/JSON. grpc.Server.ServeHTTP, which serves gRPC
// inside net/http, costs about a fifth of trustd's CPU per request more than grpc-go's own
// HTTP/2 transport, so the port sorts its connections: a gRPC client (a TLS ClientHello that
// offers only "h2", as every gRPC library sends; without TLS, the HTTP/2 client preface) goes to
// grpc-go's transport, everything else (browsers, curl, fetch, Go's net/http: they offer
// "http/1.1" as well, or speak HTTP/1.1) to net/http, which serves JSON over HTTP/1.1 and
// HTTP/2, and gRPC too for such clients. Either way the TLS handshake is crypto/tls's, here,
// with trustd's configuration, and the caller's certificates reach the role checks unchanged.

// http2Preface opens every HTTP/2 connection (RFC 9113, section 3.4).
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// splitter accepts connections on the workload-API listener and hands each, once sorted, to the
// gRPC or the HTTP listener.
type splitter struct {
	raw     net.Listener
	tls     *tls.Config // nil: plaintext (dev mode)
	timeout time.Duration
	grpc    *connListener
	http    *connListener
}

func newSplitter(raw net.Listener, tc *tls.Config, timeout time.Duration) *splitter {
	return &splitter{raw: raw, tls: tc, timeout: timeout, grpc: newConnListener(raw.Addr()), http: newConnListener(raw.Addr())}
}

// run accepts until the raw listener is closed, then closes both listeners.
func (s *splitter) run() error {
	defer s.grpc.Close()
	defer s.http.Close()
	var delay time.Duration
	for {
		c, err := s.raw.Accept()
		if err != nil {
			// Out of file descriptors (EMFILE, ENFILE), which any client can cause with enough
			// connections, is temporary: back off and accept again, as net/http and grpc-go do,
			// rather than stop the port.
			var ne net.Error
			var te interface{ Temporary() bool }
			if errors.As(err, &ne) && ne.Timeout() || errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		delay = 0
		go s.sort(c)
	}
}

// sort handshakes (TLS) or peeks (plaintext) within the timeout and hands the connection on.
func (s *splitter) sort(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(s.timeout))
	out, native, err := s.classify(c)
	if err != nil {
		c.Close()
		return
	}
	_ = out.SetDeadline(time.Time{})
	to := s.http
	if native {
		to = s.grpc
	}
	if !to.put(out) {
		out.Close()
	}
}

func (s *splitter) classify(c net.Conn) (net.Conn, bool, error) {
	if s.tls == nil {
		pc := &peekedConn{Conn: c, r: bufio.NewReaderSize(c, 4096)}
		preface := []byte(http2Preface)
		for n := 1; n <= len(preface); n++ {
			b, err := pc.r.Peek(n)
			if err != nil {
				return nil, false, err
			}
			if !bytes.Equal(b, preface[:n]) {
				return pc, false, nil
			}
		}
		return pc, true, nil
	}
	var offered []string
	cfg := s.tls.Clone()
	cfg.NextProtos = []string{"h2", "http/1.1"}
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		offered = slices.Clone(h.SupportedProtos)
		return nil, nil
	}
	tc := tls.Server(c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, false, err
	}
	return tc, len(offered) == 1 && offered[0] == "h2", nil
}

// peekedConn reads first what sorting peeked, then from the connection itself. Only the
// server's one reading goroutine calls Read.
type peekedConn struct {
	net.Conn
	r *bufio.Reader // nil once drained
}

func (p *peekedConn) Read(b []byte) (int, error) {
	if p.r != nil {
		if p.r.Buffered() > 0 {
			return p.r.Read(b)
		}
		p.r = nil
	}
	return p.Conn.Read(b)
}

// connListener is a net.Listener of connections handed over by the splitter.
type connListener struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// put hands c to the server that accepts on l; false once l is closed.
func (l *connListener) put(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

// handshakenTLS are the gRPC transport credentials of connections whose TLS handshake the
// splitter made: it hands grpc-go the caller's TLS state, as credentials.NewTLS would after its
// own handshake, so that the role checks read the same certificates.
type handshakenTLS struct{}

func (handshakenTLS) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil, nil, errors.New("trustd: a connection without TLS on a TLS port")
	}
	return c, credentials.TLSInfo{State: tc.ConnectionState(), CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
}

func (handshakenTLS) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("trustd: server-side credentials only")
}

func (handshakenTLS) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.3"}
}

func (handshakenTLS) Clone() credentials.TransportCredentials { return handshakenTLS{} }

func (handshakenTLS) OverrideServerName(string) error { return nil }
