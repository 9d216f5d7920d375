package fetch_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest/fetch"
)

// server listens on 127.0.0.1 only and answers with codes in turn (the last one repeats).
func server(t *testing.T, codes ...int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		code := codes[min(i, len(codes)-1)]
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		w.Header().Set("X-Chain", "pem")
		w.WriteHeader(code)
		if code == http.StatusOK {
			w.Write([]byte("body"))
		}
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestClientRetries(t *testing.T) {
	for _, tc := range []struct {
		name      string
		codes     []int
		attempts  int
		wantCode  int // 0: success
		wantCalls int32
		wantWaits []time.Duration
	}{
		{"ok", []int{200}, 4, 0, 1, nil},
		{"503 then ok", []int{503, 503, 200}, 4, 0, 3, []time.Duration{time.Second, 2 * time.Second}},
		{"Retry-After honoured and capped", []int{429, 200}, 4, 0, 2, []time.Duration{5 * time.Second}},
		{"attempts bound", []int{503}, 3, 503, 3, []time.Duration{time.Second, 2 * time.Second}},
		{"404 not retried", []int{404}, 4, 404, 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, n := server(t, tc.codes...)
			var waits []time.Duration
			c := fetch.Client{HTTP: srv.Client(), Attempts: tc.attempts, Backoff: time.Second, MaxBackoff: 5 * time.Second,
				Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }}
			h, body, err := c.Get(context.Background(), srv.URL+"/x")
			if tc.wantCode == 0 {
				if err != nil || string(body) != "body" || h.Get("X-Chain") != "pem" {
					t.Fatalf("Get = %q, %v, %v", body, h, err)
				}
			} else {
				var se *fetch.StatusError
				if !errors.As(err, &se) || se.Code != tc.wantCode {
					t.Fatalf("err = %v, want HTTP %d", err, tc.wantCode)
				}
			}
			if got := n.Load(); got != tc.wantCalls {
				t.Errorf("%d requests, want %d", got, tc.wantCalls)
			}
			if len(waits) != len(tc.wantWaits) {
				t.Fatalf("waits %v, want %v", waits, tc.wantWaits)
			}
			for i := range waits {
				if waits[i] != tc.wantWaits[i] {
					t.Errorf("waits %v, want %v", waits, tc.wantWaits)
				}
			}
		})
	}
}

func TestClientBoundsBody(t *testing.T) {
	srv, _ := server(t, 200)
	c := fetch.Client{HTTP: srv.Client(), MaxBody: 3}
	if _, _, err := c.Get(context.Background(), srv.URL); err == nil {
		t.Fatal("a body over MaxBody was accepted")
	}
}

func TestGuardSingleFlight(t *testing.T) {
	srv, n := server(t, 200)
	c := fetch.Client{HTTP: srv.Client(), Attempts: 1}
	var g fetch.Guard[[]byte]
	release := make(chan struct{})
	get := func(ctx context.Context) ([]byte, error) {
		<-release
		_, b, err := c.Get(ctx, srv.URL)
		return b, err
	}
	const callers = 8
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			b, err := g.Do(context.Background(), srv.URL, nil, nil, get)
			if err == nil && string(b) != "body" {
				err = errors.New("wrong body " + string(b))
			}
			errs <- err
		})
	}
	for g.InFlight() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others join
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := n.Load(); got != 1 {
		t.Errorf("%d requests for %d concurrent callers", got, callers)
	}
}

func TestGuardCachedAndKeep(t *testing.T) {
	srv, n := server(t, 200)
	c := fetch.Client{HTTP: srv.Client(), Attempts: 1}
	var g fetch.Guard[[]byte]
	var mem []byte
	for range 3 {
		b, err := g.Do(context.Background(), srv.URL, func() ([]byte, bool) { return mem, mem != nil }, func(b []byte) { mem = b },
			func(ctx context.Context) ([]byte, error) { _, b, err := c.Get(ctx, srv.URL); return b, err })
		if err != nil || string(b) != "body" {
			t.Fatal(b, err)
		}
	}
	if got := n.Load(); got != 1 {
		t.Errorf("%d requests, want 1 (then memory)", got)
	}
}

func TestGuardNegativeCacheExpires(t *testing.T) {
	srv, n := server(t, 503, 503, 404, 200)
	c := fetch.Client{HTTP: srv.Client(), Attempts: 1}
	now := time.Unix(1_700_000_000, 0)
	g := fetch.Guard[[]byte]{NegativeTTL: time.Minute, Now: func() time.Time { return now }}
	get := func(ctx context.Context) ([]byte, error) { _, b, err := c.Get(ctx, srv.URL); return b, err }
	do := func() error { _, err := g.Do(context.Background(), srv.URL, nil, nil, get); return err }
	steps := []struct {
		advance   time.Duration
		wantCode  int // 0: success
		wantCalls int32
	}{
		{0, 503, 1},
		{59 * time.Second, 503, 1}, // remembered
		{time.Second, 503, 2},      // expired: asked again
		{time.Minute, 404, 3},
		{9 * time.Minute, 404, 3}, // not found is remembered ten times as long
		{time.Minute, 0, 4},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		err := do()
		var se *fetch.StatusError
		switch {
		case s.wantCode == 0 && err != nil:
			t.Fatalf("step %d: %v", i, err)
		case s.wantCode != 0 && (!errors.As(err, &se) || se.Code != s.wantCode):
			t.Fatalf("step %d: err %v, want HTTP %d", i, err, s.wantCode)
		}
		if got := n.Load(); got != s.wantCalls {
			t.Fatalf("step %d: %d requests, want %d", i, got, s.wantCalls)
		}
	}
}

func TestGuardNegativeCacheIsBounded(t *testing.T) {
	g := fetch.Guard[[]byte]{NegativeTTL: time.Hour, MaxNegative: 2}
	calls := 0
	fail := func(context.Context) ([]byte, error) { calls++; return nil, errors.New("down") }
	for _, u := range []string{"a", "b", "c", "a"} {
		g.Do(context.Background(), u, nil, nil, fail)
	}
	// a and b filled the cache, c emptied it, so a is asked again.
	if calls != 4 {
		t.Errorf("%d calls, want 4", calls)
	}
}

func TestGuardRateLimit(t *testing.T) {
	srv, n := server(t, 200)
	c := fetch.Client{HTTP: srv.Client(), Attempts: 1}
	budget := errors.New("budget")
	g := fetch.Guard[[]byte]{Rate: 0.001, Burst: 3, ErrBudget: budget}
	var ok, refused int
	for i := range 10 {
		u := srv.URL + "/" + string(rune('a'+i)) // distinct URLs: single-flight does not help
		_, err := g.Do(context.Background(), u, nil, nil, func(ctx context.Context) ([]byte, error) {
			_, b, err := c.Get(ctx, u)
			return b, err
		})
		switch {
		case err == nil:
			ok++
		case errors.Is(err, budget):
			refused++
		default:
			t.Fatal(err)
		}
	}
	if ok != 3 || refused != 7 || n.Load() != 3 {
		t.Errorf("%d ok, %d refused, %d requests; want 3, 7, 3", ok, refused, n.Load())
	}
}

func TestGuardCancelledCallerIsNotRemembered(t *testing.T) {
	g := fetch.Guard[[]byte]{NegativeTTL: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	get := func(ctx context.Context) ([]byte, error) { calls++; return nil, ctx.Err() }
	g.Do(ctx, "u", nil, nil, get)
	g.Do(context.Background(), "u", nil, nil, func(context.Context) ([]byte, error) { calls++; return []byte("x"), nil })
	if calls != 2 {
		t.Errorf("%d calls: a cancelled caller's failure was cached", calls)
	}
}
