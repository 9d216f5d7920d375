// Package limits protects trustd from being overrun: per-peer rate limits (a token bucket per
// client address), a cap on requests handled at once, a deadline on every request, and the gRPC
// server options that bound message sizes, handshakes and idle connections.
//
// A request over a limit is answered at once with codes.ResourceExhausted; nothing is queued, so
// a flood costs the server a map lookup per request rather than memory and goroutines.
//
// It is not an authentication layer: the peer key is the client's IP address, which says nothing
// about who the client is. Behind a proxy that terminates connections every client shares the
// proxy's address; deploy trustd behind a TCP (L4) load balancer, as deploy/ does.
package limits

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Defaults used for zero Options fields. The zero Options value is a working, limited server:
// there is no way to switch a limit off, only to raise it.
const (
	DefaultRate           = 20.0
	DefaultBurst          = 40
	DefaultMaxConcurrent  = 64
	DefaultMaxRecvMsgSize = 4 << 20
	DefaultMaxSendMsgSize = 1 << 20
	DefaultRequestTimeout = 30 * time.Second
	DefaultMaxPeers       = 10000
	// DefaultHandshakeTimeout bounds the TLS handshake, so half-open connections cannot pile up.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultMaxStreamsPerConn bounds concurrent streams on one HTTP/2 connection.
	DefaultMaxStreamsPerConn = 100
)

// Rejection reasons passed to an Observer.
const (
	ReasonRate        = "rate"
	ReasonConcurrency = "concurrency"
)

// Observer learns of rejected requests, for example to count them in a metric. It must not block.
type Observer interface {
	Rejected(fullMethod, reason string)
}

// Options configure a Limiter. Negative values are errors.
type Options struct {
	// Rate is the sustained number of requests per second each peer may make. Zero means
	// DefaultRate.
	Rate float64
	// Burst is how many requests a peer may make at once after being idle. Zero means
	// DefaultBurst.
	Burst int
	// MaxConcurrent caps the requests handled at once across all peers. Zero means
	// DefaultMaxConcurrent.
	MaxConcurrent int
	// MaxRecvMsgSize and MaxSendMsgSize bound gRPC messages in bytes. Zero means the defaults.
	MaxRecvMsgSize int
	MaxSendMsgSize int
	// RequestTimeout is the longest a request may run; a client's shorter deadline is kept.
	// Zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MaxPeers bounds the per-peer table. When it is full of recently active peers, new peers
	// share one overflow bucket, so memory stays bounded under a spoofed or distributed flood.
	// Zero means DefaultMaxPeers.
	MaxPeers int
	// Exempt lists full method names (for example the health check) that skip the rate limit
	// and the concurrency cap, so that probes are answered while the service is saturated.
	Exempt []string
	// PeerKey names the peer a request is charged to. Nil means the IP address of the
	// connection (without the port).
	PeerKey func(ctx context.Context) string
	// Observer, if set, learns of every rejection.
	Observer Observer
	// Now defaults to time.Now.
	Now func() time.Time
}

// Limiter holds the per-peer buckets and the concurrency semaphore. It is safe for concurrent use.
type Limiter struct {
	o      Options
	exempt map[string]bool
	sem    chan struct{}

	mu        sync.Mutex
	peers     map[string]*bucket
	overflow  bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New checks o, fills its defaults and returns a Limiter.
func New(o Options) (*Limiter, error) {
	var errs []error
	if o.Rate < 0 || o.Burst < 0 || o.MaxConcurrent < 0 || o.MaxRecvMsgSize < 0 || o.MaxSendMsgSize < 0 || o.RequestTimeout < 0 || o.MaxPeers < 0 {
		errs = append(errs, errors.New("limits: negative limit; limits can be raised, not switched off"))
	}
	if o.Rate != o.Rate { // NaN
		errs = append(errs, errors.New("limits: rate is NaN"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.Rate == 0 {
		o.Rate = DefaultRate
	}
	if o.Burst == 0 {
		o.Burst = DefaultBurst
	}
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	if o.MaxRecvMsgSize == 0 {
		o.MaxRecvMsgSize = DefaultMaxRecvMsgSize
	}
	if o.MaxSendMsgSize == 0 {
		o.MaxSendMsgSize = DefaultMaxSendMsgSize
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.MaxPeers == 0 {
		o.MaxPeers = DefaultMaxPeers
	}
	if o.PeerKey == nil {
		o.PeerKey = PeerIP
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	l := &Limiter{
		o:      o,
		exempt: make(map[string]bool, len(o.Exempt)),
		sem:    make(chan struct{}, o.MaxConcurrent),
		peers:  make(map[string]*bucket),
	}
	for _, m := range o.Exempt {
		l.exempt[m] = true
	}
	l.overflow = bucket{tokens: float64(o.Burst), last: o.Now()}
	return l, nil
}

// Options returns the options in effect, defaults filled in.
func (l *Limiter) Options() Options { return l.o }

// ServerOptions returns the gRPC server options that enforce message sizes, bound the handshake
// and per-connection streams, and close idle or abusive connections. They do not include the
// interceptors; chain those where the other interceptors are chained.
func (l *Limiter) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(l.o.MaxRecvMsgSize),
		grpc.MaxSendMsgSize(l.o.MaxSendMsgSize),
		grpc.ConnectionTimeout(DefaultHandshakeTimeout),
		grpc.MaxConcurrentStreams(DefaultMaxStreamsPerConn),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: 5 * time.Minute,
			// Connections are recycled now and then so that clients spread over replicas.
			MaxConnectionAge:      30 * time.Minute,
			MaxConnectionAgeGrace: time.Minute,
			Time:                  2 * time.Minute,
			Timeout:               20 * time.Second,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 30 * time.Second, PermitWithoutStream: true}),
	}
}

// UnaryInterceptor enforces the limits on unary calls.
func (l *Limiter) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		release, err := l.admit(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		defer release()
		ctx, cancel := context.WithTimeout(ctx, l.o.RequestTimeout)
		defer cancel()
		return handler(ctx, req)
	}
}

// StreamInterceptor enforces the limits on streams: a stream counts as one request for the rate
// and holds a concurrency slot while it is open.
func (l *Limiter) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		release, err := l.admit(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		defer release()
		ctx, cancel := context.WithTimeout(ss.Context(), l.o.RequestTimeout)
		defer cancel()
		return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	}
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

func noop() {}

// admit charges the peer one token and takes a concurrency slot; the returned func gives the slot
// back. The rate is checked first so that a flooding peer never holds slots others need.
func (l *Limiter) admit(ctx context.Context, method string) (func(), error) {
	if l.exempt[method] {
		return noop, nil
	}
	if !l.allow(l.o.PeerKey(ctx)) {
		l.observe(method, ReasonRate)
		return nil, status.Error(codes.ResourceExhausted, "rate limit: too many requests from this address; retry later")
	}
	select {
	case l.sem <- struct{}{}:
		return func() { <-l.sem }, nil
	default:
		l.observe(method, ReasonConcurrency)
		return nil, status.Errorf(codes.ResourceExhausted, "server busy: %d requests in progress; retry later", l.o.MaxConcurrent)
	}
}

func (l *Limiter) observe(method, reason string) {
	if l.o.Observer != nil {
		l.o.Observer.Rejected(method, reason)
	}
}

// allow takes one token from key's bucket if it has one.
func (l *Limiter) allow(key string) bool {
	now := l.o.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.peers[key]
	if !ok {
		if len(l.peers) >= l.o.MaxPeers {
			l.sweep(now)
		}
		if len(l.peers) >= l.o.MaxPeers {
			b = &l.overflow
		} else {
			b = &bucket{tokens: float64(l.o.Burst), last: now}
			l.peers[key] = b
		}
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(float64(l.o.Burst), b.tokens+el.Seconds()*l.o.Rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets peers whose buckets have refilled: forgetting them changes nothing. It runs at
// most once a second so that a full table does not make every request scan it.
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Second {
		return
	}
	l.lastSweep = now
	full := time.Duration(float64(l.o.Burst) / l.o.Rate * float64(time.Second))
	for k, b := range l.peers {
		if now.Sub(b.last) >= full {
			delete(l.peers, k)
		}
	}
}

// Peers reports how many peers the limiter currently tracks.
func (l *Limiter) Peers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.peers)
}

// PeerIP is the default PeerKey: the IPv4 address of the connection, or the /64 prefix of an
// IPv6 address (one host usually holds a whole /64, so single addresses would be free to
// rotate), or "unknown" when the transport gives none (every such request shares one bucket).
func PeerIP(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	var ip net.IP
	if a, ok := p.Addr.(*net.TCPAddr); ok {
		ip = a.IP
	} else if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		ip = net.ParseIP(host)
	}
	switch {
	case ip == nil:
		return fmt.Sprintf("%s:%s", p.Addr.Network(), p.Addr.String())
	case ip.To4() != nil:
		return ip.To4().String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
