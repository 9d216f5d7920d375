// Package fetch is the HTTP transport that the collateral fetchers of attest/snp (AMD KDS) and
// attest/intel (Intel PCS or a PCCS) share: a Client that retries throttled or unavailable
// answers with bounded attempts and backoff, and a Guard that puts single-flight per URL, a
// bounded negative cache and a global outbound rate limit in front of any getter.
//
// URL construction, parsing, verification, freshness and disk layout stay with each TEE.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxBody bounds a response body when Client.MaxBody is zero.
const DefaultMaxBody = 1 << 20

// StatusError is an HTTP answer other than 200 OK.
type StatusError struct {
	URL  string
	Code int
}

func (e *StatusError) Error() string { return fmt.Sprintf("GET %s: HTTP %d", e.URL, e.Code) }

// IsNotFound reports whether err is a server saying it has no such resource (HTTP 404, or 400
// as AMD's KDS answers for an unknown chip).
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && (se.Code == http.StatusNotFound || se.Code == http.StatusBadRequest)
}

// Client is a GET over net/http that backs off and retries when the server throttles (HTTP
// 429) or is unavailable (502, 503, 504, network errors), honouring Retry-After. The zero value
// makes 4 attempts, waiting 10 s, then 20 s, 40 s (capped at 2 minutes).
type Client struct {
	// HTTP makes the requests; nil means a client with a 30-second timeout.
	HTTP *http.Client
	// Attempts is the number of tries; 0 means 4.
	Attempts int
	// Backoff is the first wait, doubled each retry (capped by MaxBackoff); 0 means 10 seconds.
	Backoff time.Duration
	// MaxBackoff caps one wait, including Retry-After; 0 means 2 minutes.
	MaxBackoff time.Duration
	// MaxBody bounds a response body; 0 means DefaultMaxBody. A larger body is an error.
	MaxBody int
	// Sleep waits; nil means a timer that honours ctx. Tests inject a recorder.
	Sleep func(ctx context.Context, d time.Duration) error
}

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

// Get fetches url and returns the response header and body of a 200 answer.
func (c *Client) Get(ctx context.Context, url string) (http.Header, []byte, error) {
	client := c.HTTP
	if client == nil {
		client = defaultHTTP
	}
	attempts, backoff, maxBackoff := c.Attempts, c.Backoff, c.MaxBackoff
	if attempts <= 0 {
		attempts = 4
	}
	if backoff <= 0 {
		backoff = 10 * time.Second
	}
	if maxBackoff <= 0 {
		maxBackoff = 2 * time.Minute
	}
	sleep := c.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	var lastErr error
	for i := 0; i < attempts; i++ {
		h, body, wait, err := c.once(ctx, client, url)
		if err == nil {
			return h, body, nil
		}
		lastErr = err
		if wait < 0 || i == attempts-1 {
			break
		}
		if wait == 0 {
			wait = maxBackoff
			if i < 16 && backoff<<i < maxBackoff {
				wait = backoff << i
			}
		}
		if wait > maxBackoff {
			wait = maxBackoff
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, nil, err
		}
	}
	return nil, nil, lastErr
}

// once makes one request. wait is negative when retrying is pointless, zero for the default
// backoff, or the server's Retry-After.
func (c *Client) once(ctx context.Context, client *http.Client, url string) (http.Header, []byte, time.Duration, error) {
	maxBody := c.MaxBody
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, -1, err
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, -1, ctx.Err()
		}
		return nil, nil, 0, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		body, err := io.ReadAll(io.LimitReader(resp.Body, int64(maxBody)+1))
		if err != nil {
			return nil, nil, 0, err
		}
		if len(body) > maxBody {
			return nil, nil, -1, fmt.Errorf("GET %s: body over %d bytes", url, maxBody)
		}
		return resp.Header, body, 0, nil
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		var wait time.Duration
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		return nil, nil, wait, &StatusError{URL: url, Code: resp.StatusCode}
	default:
		return nil, nil, -1, &StatusError{URL: url, Code: resp.StatusCode}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ErrBudget is returned by Guard.Do when the outbound request budget is spent.
var ErrBudget = errors.New("outbound collateral request budget exhausted; try again later")

// DefaultMaxNegative bounds the negative cache when Guard.MaxNegative is zero.
const DefaultMaxNegative = 4096

// Guard stands in front of a getter: concurrent callers for one URL share one request, a failed
// request is remembered per URL for NegativeTTL (ten times as long when the server said it has
// no such resource), and requests that do go out share one token bucket. The zero value only
// shares requests (no negative cache, no rate limit). Set the fields before first use; a Guard
// is safe for concurrent use.
type Guard[T any] struct {
	// Rate is the budget of outbound requests per second across all URLs; 0 means unlimited.
	Rate float64
	// Burst is how many requests may go out at once before Rate applies (at least 1 when Rate
	// is set).
	Burst int
	// NegativeTTL is how long a failure is answered from memory; 0 disables the negative cache.
	NegativeTTL time.Duration
	// MaxNegative bounds the negative cache; when full it is emptied (the rate limit still
	// holds). 0 means DefaultMaxNegative.
	MaxNegative int
	// ErrBudget is returned past the rate limit; nil means ErrBudget.
	ErrBudget error
	// Now is the clock of the negative cache; nil means time.Now.
	Now func() time.Time

	once     sync.Once
	mu       sync.Mutex
	limiter  *rate.Limiter
	inflight map[string]*call[T]
	failed   map[string]failure
}

type call[T any] struct {
	done chan struct{}
	body T
	err  error
}

type failure struct {
	err     error
	expires time.Time
}

func (g *Guard[T]) init() {
	g.once.Do(func() {
		if g.Rate > 0 {
			g.limiter = rate.NewLimiter(rate.Limit(g.Rate), max(g.Burst, 1))
		}
		g.inflight = map[string]*call[T]{}
		g.failed = map[string]failure{}
	})
}

func (g *Guard[T]) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

// Do returns get(ctx) for url, joining a request already in flight for the same url. cached,
// if not nil, runs under the Guard's lock before anything else and answers from the caller's
// memory (false: nothing there); keep, if not nil, runs under the same lock with a successful
// body before waiting callers are released, so no caller falls between a finished request and
// its result being remembered. cached and keep must not call back into the Guard.
func (g *Guard[T]) Do(ctx context.Context, url string, cached func() (T, bool), keep func(T), get func(context.Context) (T, error)) (T, error) {
	var zero T
	g.init()
	g.mu.Lock()
	if cached != nil {
		if b, ok := cached(); ok {
			g.mu.Unlock()
			return b, nil
		}
	}
	if f, ok := g.failed[url]; ok {
		if g.now().Before(f.expires) {
			g.mu.Unlock()
			return zero, f.err
		}
		delete(g.failed, url)
	}
	c := g.inflight[url]
	leader := c == nil
	if leader {
		if g.limiter != nil && !g.limiter.Allow() {
			g.mu.Unlock()
			if g.ErrBudget != nil {
				return zero, g.ErrBudget
			}
			return zero, ErrBudget
		}
		c = &call[T]{done: make(chan struct{})}
		g.inflight[url] = c
	}
	g.mu.Unlock()
	if !leader {
		select {
		case <-c.done:
			return c.body, c.err
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
	c.body, c.err = get(ctx)
	g.mu.Lock()
	switch {
	case c.err == nil:
		if keep != nil {
			keep(c.body)
		}
	case ctx.Err() == nil && g.NegativeTTL > 0: // a caller giving up says nothing about the server
		ttl := g.NegativeTTL
		if IsNotFound(c.err) {
			ttl *= 10
		}
		maxNeg := g.MaxNegative
		if maxNeg <= 0 {
			maxNeg = DefaultMaxNegative
		}
		if len(g.failed) >= maxNeg {
			clear(g.failed)
		}
		g.failed[url] = failure{err: c.err, expires: g.now().Add(ttl)}
	}
	delete(g.inflight, url)
	g.mu.Unlock()
	close(c.done)
	return c.body, c.err
}

// InFlight is the number of requests going out now.
func (g *Guard[T]) InFlight() int {
	g.init()
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.inflight)
}
