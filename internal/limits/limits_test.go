package limits

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// testService is a hand-written gRPC service: Echo answers at once with the size of its input,
// Hold waits until the test lets it go, so the concurrency cap can be filled.
type testService struct {
	entered chan struct{}
	release chan struct{}
	// deadline reports how far away the request deadline was when Echo ran.
	mu       sync.Mutex
	deadline time.Duration
}

const (
	echoMethod = "/limits.test.Test/Echo"
	holdMethod = "/limits.test.Test/Hold"
)

func (s *testService) desc() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: "limits.test.Test",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "Echo", Handler: func(_ any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
				in := new(wrapperspb.BytesValue)
				if err := dec(in); err != nil {
					return nil, err
				}
				h := func(ctx context.Context, req any) (any, error) {
					if d, ok := ctx.Deadline(); ok {
						s.mu.Lock()
						s.deadline = time.Until(d)
						s.mu.Unlock()
					}
					return wrapperspb.Int64(int64(len(req.(*wrapperspb.BytesValue).GetValue()))), nil
				}
				return ic(ctx, in, &grpc.UnaryServerInfo{FullMethod: echoMethod}, h)
			}},
			{MethodName: "Hold", Handler: func(_ any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
				in := new(emptypb.Empty)
				if err := dec(in); err != nil {
					return nil, err
				}
				h := func(ctx context.Context, req any) (any, error) {
					s.entered <- struct{}{}
					select {
					case <-s.release:
					case <-ctx.Done():
						return nil, ctx.Err()
					}
					return &emptypb.Empty{}, nil
				}
				return ic(ctx, in, &grpc.UnaryServerInfo{FullMethod: holdMethod}, h)
			}},
		},
	}
}

type countingObserver struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *countingObserver) Rejected(method, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[reason]++
}

func (o *countingObserver) count(reason string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[reason]
}

// serve starts a gRPC server on 127.0.0.1 guarded by a Limiter built from o.
func serve(t *testing.T, o Options) (string, *testService, *Limiter) {
	t.Helper()
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &testService{entered: make(chan struct{}, 16), release: make(chan struct{})}
	opts := append(l.ServerOptions(), grpc.ChainUnaryInterceptor(l.UnaryInterceptor()), grpc.ChainStreamInterceptor(l.StreamInterceptor()))
	srv := grpc.NewServer(opts...)
	srv.RegisterService(svc.desc(), svc)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), svc, l
}

// dialFrom connects to addr from the loopback source address src (Linux routes all of
// 127.0.0.0/8 to lo), so that one test process can play several peers.
func dialFrom(t *testing.T, addr, src string) *grpc.ClientConn {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func echo(ctx context.Context, cc *grpc.ClientConn, n int) error {
	out := new(wrapperspb.Int64Value)
	return cc.Invoke(ctx, echoMethod, wrapperspb.Bytes(bytes.Repeat([]byte{'x'}, n)), out)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// needLoopbackRange skips where only 127.0.0.1 is configured (macOS, some BSDs).
func needLoopbackRange(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.3:0")
	if err != nil {
		t.Skipf("needs all of 127.0.0.0/8 on the loopback interface (Linux): %v", err)
	}
	l.Close()
}

func TestFloodFromOnePeerLeavesOthersServed(t *testing.T) {
	needLoopbackRange(t)
	// The clock stands still, so the flooder's bucket never refills during the test.
	now := time.Unix(1_800_000_000, 0)
	obs := &countingObserver{}
	addr, _, l := serve(t, Options{Rate: 5, Burst: 10, Observer: obs, Now: func() time.Time { return now }})
	ctx := ctxT(t)
	flooder := dialFrom(t, addr, "127.0.0.2")
	bystander := dialFrom(t, addr, "127.0.0.3")

	ok, exhausted := 0, 0
	for range 200 {
		err := echo(ctx, flooder, 1)
		switch status.Code(err) {
		case codes.OK:
			ok++
		case codes.ResourceExhausted:
			exhausted++
		default:
			t.Fatalf("flood: unexpected %v", err)
		}
	}
	if ok != 10 || exhausted != 190 {
		t.Errorf("flooder: %d served, %d ResourceExhausted; want 10 and 190 (the burst, then nothing)", ok, exhausted)
	}
	for i := range 10 {
		if err := echo(ctx, bystander, 1); err != nil {
			t.Fatalf("bystander request %d refused while another peer floods: %v", i, err)
		}
	}
	if got := obs.count(ReasonRate); got != 190 {
		t.Errorf("observer saw %d rate rejections, want 190", got)
	}
	if got := l.Peers(); got != 2 {
		t.Errorf("tracking %d peers, want 2", got)
	}
}

func TestConcurrencyCapAnswersAtOnce(t *testing.T) {
	obs := &countingObserver{}
	addr, svc, _ := serve(t, Options{MaxConcurrent: 2, Rate: 1000, Burst: 1000, Observer: obs})
	ctx := ctxT(t)
	cc := dialFrom(t, addr, "127.0.0.1")

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() { errs <- cc.Invoke(ctx, holdMethod, &emptypb.Empty{}, &emptypb.Empty{}) })
	}
	<-svc.entered
	<-svc.entered
	// Both slots are held: the next request must be refused without waiting for them.
	start := time.Now()
	err := echo(ctx, cc, 1)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("third request while two are held: %v, want ResourceExhausted", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("refusal took %v: it queued instead of answering at once", waited)
	}
	close(svc.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("held request: %v", err)
		}
	}
	if err := echo(ctx, cc, 1); err != nil {
		t.Errorf("after the held requests finished: %v", err)
	}
	if obs.count(ReasonConcurrency) != 1 {
		t.Errorf("observer saw %d concurrency rejections, want 1", obs.count(ReasonConcurrency))
	}
}

func TestMessageSizeAndDeadline(t *testing.T) {
	addr, svc, _ := serve(t, Options{MaxRecvMsgSize: 1 << 10, RequestTimeout: 3 * time.Second})
	ctx := ctxT(t)
	cc := dialFrom(t, addr, "127.0.0.1")
	tests := []struct {
		name string
		size int
		want codes.Code
	}{
		{"small", 100, codes.OK},
		{"at the limit minus framing", 1000, codes.OK},
		{"over the limit", 2 << 10, codes.ResourceExhausted},
		{"far over the limit", 1 << 20, codes.ResourceExhausted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := echo(ctx, cc, tc.size); status.Code(err) != tc.want {
				t.Errorf("%d bytes: %v, want %v", tc.size, err, tc.want)
			}
		})
	}
	// The client's deadline is 20s away; the server's own 3s bound must apply.
	svc.mu.Lock()
	d := svc.deadline
	svc.mu.Unlock()
	if d <= 0 || d > 3*time.Second {
		t.Errorf("handler deadline %v away, want within the 3s RequestTimeout", d)
	}
}

func TestExemptMethodSkipsLimits(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	addr, _, _ := serve(t, Options{Rate: 1, Burst: 1, Exempt: []string{echoMethod}, Now: func() time.Time { return now }})
	ctx := ctxT(t)
	cc := dialFrom(t, addr, "127.0.0.1")
	for i := range 20 {
		if err := echo(ctx, cc, 1); err != nil {
			t.Fatalf("exempt request %d: %v", i, err)
		}
	}
	// Hold is not exempt and its peer still has its bucket of one: it must be admitted (and then
	// run into its short deadline); ResourceExhausted would mean the exempt calls were charged.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := cc.Invoke(short, holdMethod, &emptypb.Empty{}, &emptypb.Empty{}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("non-exempt request after exempt ones: %v, want DeadlineExceeded after being admitted", err)
	}
}

func TestBucketRefill(t *testing.T) {
	tests := []struct {
		name    string
		rate    float64
		burst   int
		steps   []time.Duration // time advanced before each request
		allowed []bool
	}{
		{"burst then empty", 1, 3, []time.Duration{0, 0, 0, 0}, []bool{true, true, true, false}},
		{"refills at rate", 2, 1, []time.Duration{0, 0, 500 * time.Millisecond, 0}, []bool{true, false, true, false}},
		{"never above burst", 10, 2, []time.Duration{0, time.Hour, 0, 0}, []bool{true, true, true, false}},
		{"clock going back gives nothing", 1, 1, []time.Duration{0, -time.Hour, time.Hour}, []bool{true, false, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1_800_000_000, 0)
			l, err := New(Options{Rate: tc.rate, Burst: tc.burst, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			for i, step := range tc.steps {
				now = now.Add(step)
				if got := l.allow("p"); got != tc.allowed[i] {
					t.Errorf("request %d: allowed=%v, want %v", i, got, tc.allowed[i])
				}
			}
		})
	}
}

func TestPeerTableStaysBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l, err := New(Options{Rate: 1, Burst: 2, MaxPeers: 3, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "b", "c"} {
		l.allow(p)
	}
	// The table is full of active peers: newcomers share the overflow bucket (burst 2).
	got := []bool{l.allow("d"), l.allow("e"), l.allow("f")}
	if want := []bool{true, true, false}; got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("overflow peers allowed %v, want %v", got, want)
	}
	if l.Peers() != 3 {
		t.Errorf("%d peers tracked, want 3", l.Peers())
	}
	// Once the old peers' buckets have refilled they are forgotten and newcomers get their own.
	now = now.Add(time.Minute)
	if !l.allow("g") {
		t.Error("new peer refused after idle peers could be swept")
	}
	if l.Peers() != 1 {
		t.Errorf("%d peers tracked after the sweep, want 1", l.Peers())
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	nan := 0.0
	nan = nan / nan
	tests := []struct {
		name string
		o    Options
	}{
		{"negative rate", Options{Rate: -1}},
		{"NaN rate", Options{Rate: nan}},
		{"negative burst", Options{Burst: -1}},
		{"negative concurrency", Options{MaxConcurrent: -1}},
		{"negative message size", Options{MaxRecvMsgSize: -1}},
		{"negative timeout", Options{RequestTimeout: -time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.o); err == nil {
				t.Error("New accepted it")
			}
		})
	}
	l, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if o := l.Options(); o.Rate != DefaultRate || o.Burst != DefaultBurst || o.MaxConcurrent != DefaultMaxConcurrent || o.MaxRecvMsgSize != DefaultMaxRecvMsgSize {
		t.Errorf("zero Options did not get the defaults: %+v", o)
	}
}

func TestPeerIP(t *testing.T) {
	tests := []struct {
		name string
		addr net.Addr
		want string
	}{
		{"IPv4", &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 4444}, "10.1.2.3"},
		{"IPv4-mapped IPv6", &net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 1}, "10.1.2.3"},
		{"IPv6 grouped by /64", &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), Port: 1}, "2001:db8:1:2::/64"},
		{"same /64, other host", &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2::1"), Port: 1}, "2001:db8:1:2::/64"},
		{"unix socket", &net.UnixAddr{Name: "/run/trustd.sock", Net: "unix"}, "unix:/run/trustd.sock"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: tc.addr})
			if got := PeerIP(ctx); got != tc.want {
				t.Errorf("PeerIP = %q, want %q", got, tc.want)
			}
		})
	}
	if got := PeerIP(context.Background()); got != "unknown" {
		t.Errorf("no peer: %q, want unknown", got)
	}
}
