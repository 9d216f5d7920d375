package daemon

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestSplitterSorts: gRPC clients (a ClientHello offering only h2; without TLS, the HTTP/2
// preface) reach grpc-go's transport, every other client net/http, with the bytes they sent
// intact; a client that says nothing within the timeout is dropped.
func TestSplitterSorts(t *testing.T) {
	cert, key, pool := selfSigned(t, t.TempDir())
	kp, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	serverTLS := &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS13}
	for _, tc := range []struct {
		name   string
		tls    bool
		protos []string
		send   string
		native bool
	}{
		{"grpc over tls", true, []string{"h2"}, "", true},
		{"browser over tls", true, []string{"h2", "http/1.1"}, "", false},
		{"http/1.1 over tls", true, []string{"http/1.1"}, "", false},
		{"no alpn", true, nil, "", false},
		{"h2c preface", false, nil, http2Preface + "rest", true},
		{"http/1.1", false, nil, "POST /medicus.trust.v1.Trust/GetChallenge HTTP/1.1\r\n", false},
		{"short request", false, nil, "GET / HTTP/1.0\r\n\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var cfg *tls.Config
			if tc.tls {
				cfg = serverTLS
			}
			sp := newSplitter(raw, cfg, 2*time.Second)
			go sp.run()
			defer raw.Close()
			c, err := net.Dial("tcp", raw.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var client net.Conn = c
			if tc.tls {
				tc := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: tc.protos})
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				client = tc
			}
			send := tc.send
			if send == "" {
				send = "hello"
			}
			go client.Write([]byte(send))
			want, other := sp.http, sp.grpc
			if tc.native {
				want, other = sp.grpc, sp.http
			}
			select {
			case got := <-want.ch:
				defer got.Close()
				b := make([]byte, len(send))
				if _, err := io.ReadFull(got, b); err != nil || string(b) != send {
					t.Fatalf("read %q, %v; want %q", b, err, send)
				}
			case <-other.ch:
				t.Fatal("sorted to the wrong server")
			case <-time.After(5 * time.Second):
				t.Fatal("not sorted")
			}
		})
	}

	// Silence: dropped after the timeout, handed to neither server.
	raw, _ := net.Listen("tcp", "127.0.0.1:0")
	defer raw.Close()
	sp := newSplitter(raw, nil, 200*time.Millisecond)
	go sp.run()
	c, _ := net.Dial("tcp", raw.Addr().String())
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("silent client: %v, want the connection closed", err)
	}
}

// emfileListener fails its first Accept as accept(2) does when the process is out of file
// descriptors: a state any client can cause by opening enough connections.
type emfileListener struct {
	net.Listener
	failed bool
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if !l.failed {
		l.failed = true
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestSplitterSurvivesTemporaryAcceptErrors: running out of file descriptors (EMFILE) is
// temporary; the splitter must keep accepting, as net/http and grpc-go do, rather than stop the
// workload-API port (and with it trustd) for every caller.
func TestSplitterSurvivesTemporaryAcceptErrors(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	sp := newSplitter(&emfileListener{Listener: raw}, nil, 2*time.Second)
	stopped := make(chan error, 1)
	go func() { stopped <- sp.run() }()
	c, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	select {
	case got := <-sp.http.ch:
		got.Close()
	case err := <-stopped:
		t.Fatalf("the splitter stopped on a temporary accept error: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("not sorted")
	}
}
