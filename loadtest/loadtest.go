// Package loadtest drives many simulated workloads against a trustd and measures what a
// workload sees: each request is one full attestation (challenge, evidence, Attest) followed by
// one release (a data key or a secret), as a workload does when it starts.
//
// The workloads use the INSECURE simulated TEE (enclave/simguest) and so need a trustd started with
// --dev (or an in-process one). Runs are bounded in count and time, and the target must be a
// loopback address unless AllowRemote is set: a load test is never pointed at production by
// accident.
package loadtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/medicus-cloud/trust/enclave/simguest"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/sdk"
)

// Bounds on a run; Options beyond them are errors.
const (
	MaxWorkloads = 1024
	MaxRequests  = 1_000_000
	MaxDuration  = 10 * time.Minute
)

// Defaults for zero Options fields.
const (
	DefaultWorkloads      = 8
	DefaultRequests       = 1000
	DefaultDuration       = 30 * time.Second
	DefaultRequestTimeout = 10 * time.Second
)

// Release kinds.
const (
	ReleaseDataKey = "data-key"
	ReleaseSecret  = "secret"
)

// Options configure a run.
type Options struct {
	// Addr of trustd (host:port). It must be a loopback address (127.0.0.0/8, ::1, localhost)
	// unless AllowRemote. Ignored when Dial is set.
	Addr string
	// AllowRemote permits a non-loopback Addr: only for a dedicated test deployment.
	AllowRemote bool
	// TLS for the connections; ignored when Insecure. Nil with Insecure false means TLS 1.3
	// with the system roots.
	TLS *tls.Config
	// Insecure uses plaintext gRPC, for a trustd in --dev mode.
	Insecure bool
	// DistinctSources makes workload i connect from its own loopback source address
	// (127.0.0.2, 127.0.0.3, ...; Linux routes all of 127/8 to lo), so that per-peer rate
	// limits see many peers, as they would in production. Only for an IPv4 loopback Addr.
	DistinctSources bool
	// Dial, if set, replaces dialing: it returns the connection workload i uses (tests use it
	// for in-process servers). The run closes nothing it did not open.
	Dial func(ctx context.Context, i int) (grpc.ClientConnInterface, error)
	// Workloads run concurrently, each with its own connection and ephemeral keys. Zero means
	// DefaultWorkloads.
	Workloads int
	// Requests is the total number of attest-plus-release requests. Zero means DefaultRequests.
	Requests int
	// Duration bounds the run: no request starts after it. Zero means DefaultDuration.
	Duration time.Duration
	// Rate paces the run at this many requests per second in total (open loop). Zero sends
	// each workload's next request as soon as the previous one is answered (closed loop).
	Rate float64
	// RequestTimeout bounds one request. Zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Measurement of the simulated workloads; the policy of the trustd must admit it.
	Measurement []byte
	// SVN is the simulated workloads' guest SVN (policies may demand a minimum).
	SVN uint32
	// Release is ReleaseDataKey (default) or ReleaseSecret.
	Release string
	// Name of the data key root or secret to release; the policy must grant it.
	Name string
	// Context of data keys. Nil means {"tenant": "loadtest"}.
	Context kms.Context
	// Now defaults to time.Now.
	Now func() time.Time
}

// Result is what a run measured.
type Result struct {
	Workloads int
	Release   string
	// Requests attempted, and of those OK and failed.
	Requests, OK, Errors int
	// ErrorsByCode counts failures by gRPC status code name ("Unknown" for failures that carry
	// no status, such as a release that did not open).
	ErrorsByCode map[string]int
	// SampleErrors holds up to five distinct error messages (status messages never carry
	// secrets).
	SampleErrors []string
	// Elapsed from the first request to the last answer.
	Elapsed time.Duration
	// Throughput is successful requests per second over Elapsed.
	Throughput float64
	// Latency of successful requests, attest plus release.
	P50, P99, Max time.Duration
}

func (o *Options) check() error {
	var errs []error
	if o.Workloads == 0 {
		o.Workloads = DefaultWorkloads
	}
	if o.Requests == 0 {
		o.Requests = DefaultRequests
	}
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.Release == "" {
		o.Release = ReleaseDataKey
	}
	if o.Context == nil {
		o.Context = kms.Context{"tenant": "loadtest"}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Workloads < 0 || o.Workloads > MaxWorkloads {
		errs = append(errs, fmt.Errorf("workloads: %d outside [1, %d]", o.Workloads, MaxWorkloads))
	}
	if o.Requests < 0 || o.Requests > MaxRequests {
		errs = append(errs, fmt.Errorf("requests: %d outside [1, %d]", o.Requests, MaxRequests))
	}
	if o.Duration < 0 || o.Duration > MaxDuration {
		errs = append(errs, fmt.Errorf("duration: %v outside (0, %v]", o.Duration, MaxDuration))
	}
	if o.RequestTimeout < 0 {
		errs = append(errs, errors.New("request timeout: negative"))
	}
	if !(o.Rate >= 0) { // also NaN
		errs = append(errs, fmt.Errorf("rate: %v is not a non-negative number", o.Rate))
	}
	if o.Release != ReleaseDataKey && o.Release != ReleaseSecret {
		errs = append(errs, fmt.Errorf("release: %q, want %s or %s", o.Release, ReleaseDataKey, ReleaseSecret))
	}
	if o.Name == "" {
		errs = append(errs, errors.New("name: the data key or secret to release is required"))
	}
	if len(o.Measurement) == 0 {
		errs = append(errs, errors.New("measurement: required (the policy must admit the simulated workloads)"))
	}
	if _, err := o.Context.Canonical(); err != nil {
		errs = append(errs, fmt.Errorf("context: %w", err))
	}
	if o.Dial == nil {
		ip, err := loopback(o.Addr)
		switch {
		case err != nil && !o.AllowRemote:
			errs = append(errs, err)
		case o.DistinctSources && (ip == nil || ip.To4() == nil):
			errs = append(errs, errors.New("distinct sources: needs an IPv4 loopback address such as 127.0.0.1"))
		}
	}
	return errors.Join(errs...)
}

// loopback returns the IP of addr if it is a loopback address, else an error.
func loopback(addr string) (net.IP, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("addr: %q is not host:port", addr)
	}
	if host == "localhost" {
		return nil, nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("addr: %s is not a loopback address (set AllowRemote for a dedicated test deployment)", host)
	}
	return ip, nil
}

// Run performs the load test. It returns an error only when the run could not be set up (bad
// options, connections that cannot be created); failed requests are counted in the Result.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	clients, closeAll, err := o.clients(ctx)
	if err != nil {
		return nil, err
	}
	defer closeAll()

	// stop ends dispatching; requests already started run to their own timeout.
	stop, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	jobs := make(chan struct{})
	go o.dispatch(stop, jobs)

	type sample struct {
		d   time.Duration
		err error
	}
	var (
		mu      sync.Mutex
		samples = make([]sample, 0, o.Requests)
		wg      sync.WaitGroup
	)
	start := o.Now()
	for _, c := range clients {
		wg.Go(func() {
			for range jobs {
				t0 := o.Now()
				err := o.one(ctx, c)
				d := o.Now().Sub(t0)
				mu.Lock()
				samples = append(samples, sample{d, err})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r := &Result{Workloads: o.Workloads, Release: o.Release, Elapsed: o.Now().Sub(start), ErrorsByCode: map[string]int{}}
	var lat []time.Duration
	for _, s := range samples {
		r.Requests++
		if s.err == nil {
			r.OK++
			lat = append(lat, s.d)
			continue
		}
		r.Errors++
		r.ErrorsByCode[codeName(s.err)]++
		if msg := s.err.Error(); len(r.SampleErrors) < 5 && !slices.Contains(r.SampleErrors, msg) {
			r.SampleErrors = append(r.SampleErrors, msg)
		}
	}
	if r.Elapsed > 0 {
		r.Throughput = float64(r.OK) / r.Elapsed.Seconds()
	}
	slices.Sort(lat)
	r.P50, r.P99 = percentile(lat, 0.50), percentile(lat, 0.99)
	if len(lat) > 0 {
		r.Max = lat[len(lat)-1]
	}
	return r, nil
}

// dispatch hands out o.Requests jobs, paced at o.Rate when set, until stop.
func (o *Options) dispatch(stop context.Context, jobs chan<- struct{}) {
	defer close(jobs)
	start := o.Now()
	for i := range o.Requests {
		if o.Rate > 0 {
			due := start.Add(time.Duration(float64(i) / o.Rate * float64(time.Second)))
			if wait := due.Sub(o.Now()); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-stop.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
		}
		select {
		case <-stop.Done():
			return
		case jobs <- struct{}{}:
		}
	}
}

// one is one workload start: a fresh attestation, then one release.
func (o *Options) one(ctx context.Context, c *sdk.Client) error {
	ctx, cancel := context.WithTimeout(ctx, o.RequestTimeout)
	defer cancel()
	if _, err := c.Attest(ctx); err != nil {
		return err
	}
	if o.Release == ReleaseSecret {
		s, err := c.Secret(ctx, o.Name)
		if err != nil {
			return err
		}
		s.Wipe()
		return nil
	}
	dek, _, _, err := c.GenerateDataKeyLeased(ctx, o.Name, o.Context)
	if err != nil {
		return err
	}
	dek.Wipe()
	return nil
}

// clients opens one connection and one sdk client per workload.
func (o *Options) clients(ctx context.Context) ([]*sdk.Client, func(), error) {
	var (
		clients []*sdk.Client
		conns   []*grpc.ClientConn
	)
	closeAll := func() {
		for _, c := range clients {
			c.Close()
		}
		for _, cc := range conns {
			cc.Close()
		}
	}
	creds := insecure.NewCredentials()
	if !o.Insecure {
		cfg := o.TLS
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS13}
		}
		creds = credentials.NewTLS(cfg)
	}
	for i := range o.Workloads {
		var conn grpc.ClientConnInterface
		if o.Dial != nil {
			c, err := o.Dial(ctx, i)
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("loadtest: connection %d: %w", i, err)
			}
			conn = c
		} else {
			opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
			if o.DistinctSources {
				d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, byte((i+2)>>8), byte((i+2)&0xff))}}
				opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
					return d.DialContext(ctx, "tcp", a)
				}))
			}
			cc, err := grpc.NewClient("passthrough:///"+o.Addr, opts...)
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("loadtest: connecting to %s: %w", o.Addr, err)
			}
			conns = append(conns, cc)
			conn = cc
		}
		c, err := sdk.New(ctx, sdk.Options{Conn: conn, Provider: simguest.NewInsecure(simguest.Options{Measurement: o.Measurement, SVN: o.SVN}), Now: o.Now})
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("loadtest: %w", err)
		}
		clients = append(clients, c)
	}
	return clients, closeAll, nil
}

func codeName(err error) string {
	var de *sdk.DeniedError
	if errors.As(err, &de) {
		return "PermissionDenied"
	}
	if st, ok := status.FromError(err); ok {
		return st.Code().String()
	}
	return "Unknown"
}

// percentile of sorted durations by nearest rank; zero when empty.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Print writes the result for people.
func (r *Result) Print(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "loadtest: %d requests (attest + %s release) by %d workloads in %s\n",
		r.Requests, r.Release, r.Workloads, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "throughput  %.1f req/s\n", r.Throughput)
	fmt.Fprintf(&b, "latency     p50 %s  p99 %s  max %s\n", ms(r.P50), ms(r.P99), ms(r.Max))
	fmt.Fprintf(&b, "errors      %d\n", r.Errors)
	codes := make([]string, 0, len(r.ErrorsByCode))
	for c := range r.ErrorsByCode {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		fmt.Fprintf(&b, "  %-18s %d\n", c, r.ErrorsByCode[c])
	}
	for _, e := range r.SampleErrors {
		fmt.Fprintf(&b, "  e.g. %s\n", e)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
