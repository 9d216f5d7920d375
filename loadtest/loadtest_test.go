package loadtest_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/medicus-cloud/trust/internal/limits"
	"github.com/medicus-cloud/trust/loadtest"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRunAgainstInProcessTrustd(t *testing.T) {
	addr := startTrustd(t)
	tests := []struct {
		name    string
		release string
		rel     string
	}{
		{"data keys", loadtest.ReleaseDataKey, keyName},
		{"secrets", loadtest.ReleaseSecret, secretName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := loadtest.Run(ctxT(t), loadtest.Options{Addr: addr, Insecure: true, Workloads: 4, Requests: 40,
				Measurement: measurement(), Release: tc.release, Name: tc.rel})
			if err != nil {
				t.Fatal(err)
			}
			if r.Requests != 40 || r.OK != 40 || r.Errors != 0 {
				t.Fatalf("%d requests, %d ok, %d errors %v %v; want 40 clean", r.Requests, r.OK, r.Errors, r.ErrorsByCode, r.SampleErrors)
			}
			if r.P50 <= 0 || r.P99 < r.P50 || r.Max < r.P99 || r.Throughput <= 0 {
				t.Errorf("implausible figures: %+v", r)
			}
			var out strings.Builder
			if err := r.Print(&out); err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"40 requests", "throughput", "p50", "p99", "errors      0"} {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
		})
	}
}

// TestLimitsSeenByTheLoadTest: one address flooding a rate-limited trustd gets
// ResourceExhausted, reported as errors; the same load spread over many source addresses, as
// real workloads are, gets through.
func TestLimitsSeenByTheLoadTest(t *testing.T) {
	// The burst allows 8 requests per source, so that the spread run stays clean even when one
	// workload takes more than its share of the shared job queue (it does on a loaded machine).
	lim, err := limits.New(limits.Options{Rate: 1, Burst: 24})
	if err != nil {
		t.Fatal(err)
	}
	addr := startTrustd(t, grpc.ChainUnaryInterceptor(lim.UnaryInterceptor()))
	// Each request is three calls (challenge, attest, release): a burst of 24 is 8 requests.
	base := loadtest.Options{Addr: addr, Insecure: true, Workloads: 8, Requests: 16, Measurement: measurement(), Name: keyName}

	one := base
	one.Requests = 32
	r, err := loadtest.Run(ctxT(t), one)
	if err != nil {
		t.Fatal(err)
	}
	if r.ErrorsByCode["ResourceExhausted"] == 0 || r.OK > 12 {
		t.Errorf("one source: %d ok, errors %v; want ResourceExhausted after about 8", r.OK, r.ErrorsByCode)
	}

	if l, err := net.Listen("tcp", "127.0.0.3:0"); err != nil {
		t.Skipf("distinct sources need all of 127.0.0.0/8 on the loopback interface (Linux): %v", err)
	} else {
		l.Close()
	}
	spread := base
	spread.DistinctSources = true
	r, err = loadtest.Run(ctxT(t), spread)
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 0 || r.OK != 16 {
		t.Errorf("distinct sources: %d ok, errors %v %v; want 16 clean", r.OK, r.ErrorsByCode, r.SampleErrors)
	}
}

func TestDeniedWorkloadsAreErrors(t *testing.T) {
	addr := startTrustd(t)
	r, err := loadtest.Run(ctxT(t), loadtest.Options{Addr: addr, Insecure: true, Workloads: 2, Requests: 4,
		Measurement: []byte("some other image"), Name: keyName})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK != 0 || r.ErrorsByCode["PermissionDenied"] != 4 {
		t.Errorf("%d ok, errors %v; want 4 PermissionDenied", r.OK, r.ErrorsByCode)
	}
	if len(r.SampleErrors) != 1 || !strings.Contains(r.SampleErrors[0], "measurement") {
		t.Errorf("sample errors %q: want the one denial naming the measurement", r.SampleErrors)
	}
}

func TestRunIsBoundedInTime(t *testing.T) {
	addr := startTrustd(t)
	start := time.Now()
	r, err := loadtest.Run(ctxT(t), loadtest.Options{Addr: addr, Insecure: true, Workloads: 2, Requests: 100_000,
		Rate: 20, Duration: 500 * time.Millisecond, Measurement: measurement(), Name: keyName})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("a 500ms run took %v", took)
	}
	if r.Requests == 0 || r.Requests > 12 || r.Errors != 0 {
		t.Errorf("%d requests (%d errors) in 500ms at 20/s; want about 10, none failed", r.Requests, r.Errors)
	}
}

func TestOptionsAreChecked(t *testing.T) {
	ok := loadtest.Options{Addr: "127.0.0.1:7443", Insecure: true, Measurement: measurement(), Name: keyName}
	tests := []struct {
		name string
		edit func(o *loadtest.Options)
		want string
	}{
		{"remote address", func(o *loadtest.Options) { o.Addr = "trustd.prod.medicus.cloud:7443" }, "not a loopback"},
		{"remote IP", func(o *loadtest.Options) { o.Addr = "10.0.0.8:7443" }, "not a loopback"},
		{"no port", func(o *loadtest.Options) { o.Addr = "127.0.0.1" }, "host:port"},
		{"too many workloads", func(o *loadtest.Options) { o.Workloads = loadtest.MaxWorkloads + 1 }, "workloads"},
		{"too many requests", func(o *loadtest.Options) { o.Requests = loadtest.MaxRequests + 1 }, "requests"},
		{"too long", func(o *loadtest.Options) { o.Duration = time.Hour }, "duration"},
		{"negative rate", func(o *loadtest.Options) { o.Rate = -1 }, "rate"},
		{"unknown release", func(o *loadtest.Options) { o.Release = "everything" }, "release"},
		{"no name", func(o *loadtest.Options) { o.Name = "" }, "name"},
		{"no measurement", func(o *loadtest.Options) { o.Measurement = nil }, "measurement"},
		{"distinct sources on IPv6", func(o *loadtest.Options) { o.Addr = "[::1]:7443"; o.DistinctSources = true }, "IPv4 loopback"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.edit(&o)
			_, err := loadtest.Run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
