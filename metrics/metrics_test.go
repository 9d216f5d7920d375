package metrics_test

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/medicus-cloud/trust/attest/schemes"
	"github.com/medicus-cloud/trust/internal/limits"
	"github.com/medicus-cloud/trust/metrics"
	"github.com/medicus-cloud/trust/release"
)

var (
	_ metrics.Recorder = metrics.Nop{}
	_ limits.Observer  = (*metrics.Metrics)(nil)
	_ limits.Observer  = metrics.Nop{}
)

func newMetrics(t *testing.T, o metrics.Options) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, o)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func TestRecorderSeries(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{TEEs: schemes.Names()})
	m.Attestation("sev-snp", "allow")
	m.Attestation("sev-snp", "allow")
	m.Attestation("tdx", "deny")
	m.Attestation("SGX", "error")
	// Values from outside the fixed sets must not become series of their own.
	m.Attestation("evil\"tee", "allow")
	m.Attestation("arm-cca", "allow") // no such scheme
	m.Attestation("tdx", "maybe")
	m.Release(release.DataKey, release.Allow)
	m.Release(release.Secret, release.Deny)
	m.Release(release.Unwrap, release.Allow)
	m.Release("bogus", release.Allow)
	m.Release(release.Unwrap, "ok") // the old, drifted vocabulary is not a label of its own
	m.UnverifiedEvidence("sev-snp")
	m.KeyStoreError("unwrap")
	m.KeyStoreError("vault: connection refused to 10.0.0.1")
	m.AuditAppend(3*time.Millisecond, nil)
	m.AuditAppend(30*time.Millisecond, errors.New("disk full"))
	m.CollateralCache("intel-pcs", true)
	m.CollateralCache("intel-pcs", false)
	m.CollateralCache("amd-kds", true)
	m.Rejected("/medicus.trust.v1.Trust/Attest", limits.ReasonRate)

	want := `
# HELP trustd_attestations_total Attestation decisions by TEE type and verdict.
# TYPE trustd_attestations_total counter
trustd_attestations_total{tee="other",verdict="allow"} 2
trustd_attestations_total{tee="sev-snp",verdict="allow"} 2
trustd_attestations_total{tee="sgx",verdict="error"} 1
trustd_attestations_total{tee="tdx",verdict="deny"} 1
trustd_attestations_total{tee="tdx",verdict="other"} 1
# HELP trustd_releases_total Release calls (secrets, data keys, unwraps) by kind and outcome.
# TYPE trustd_releases_total counter
trustd_releases_total{kind="data_key",outcome="allow"} 1
trustd_releases_total{kind="other",outcome="allow"} 1
trustd_releases_total{kind="secret",outcome="deny"} 1
trustd_releases_total{kind="unwrap",outcome="allow"} 1
trustd_releases_total{kind="unwrap",outcome="other"} 1
# HELP trustd_keystore_errors_total Failed key store operations by operation.
# TYPE trustd_keystore_errors_total counter
trustd_keystore_errors_total{op="other"} 1
trustd_keystore_errors_total{op="unwrap"} 1
# HELP trustd_audit_append_errors_total Audit appends that failed (the request was refused).
# TYPE trustd_audit_append_errors_total counter
trustd_audit_append_errors_total 1
# HELP trustd_collateral_cache_requests_total Collateral lookups by source and result (hit, miss).
# TYPE trustd_collateral_cache_requests_total counter
trustd_collateral_cache_requests_total{result="hit",source="amd-kds"} 1
trustd_collateral_cache_requests_total{result="hit",source="intel-pcs"} 1
trustd_collateral_cache_requests_total{result="miss",source="intel-pcs"} 1
# HELP trustd_limits_rejected_total Requests refused with ResourceExhausted by the limits, by method and reason.
# TYPE trustd_limits_rejected_total counter
trustd_limits_rejected_total{method="/medicus.trust.v1.Trust/Attest",reason="rate"} 1
# HELP trustd_attest_unverified_evidence_total Attest calls whose evidence failed verification (audited only as summaries), by TEE type.
# TYPE trustd_attest_unverified_evidence_total counter
trustd_attest_unverified_evidence_total{tee="sev-snp"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), metrics.NameAttestations, metrics.NameReleases,
		metrics.NameKeyStoreErrors, metrics.NameAuditErrors, metrics.NameCollateral, metrics.NameRejected, metrics.NameUnverified); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, metrics.NameAuditAppend); err != nil || n != 1 {
		t.Errorf("audit append histogram: %d series, %v", n, err)
	}
}

func TestNewNeedsItsOwnRegistry(t *testing.T) {
	if _, err := metrics.New(nil, metrics.Options{}); err == nil {
		t.Error("New(nil) succeeded: it must not fall back to the global registry")
	}
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg, metrics.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(reg, metrics.Options{}); err == nil {
		t.Error("registering twice on one registry succeeded")
	}
	if _, err := metrics.New(metrics.NewRegistry(), metrics.Options{ConstLabels: prometheus.Labels{"replica": "trustd-0"}}); err != nil {
		t.Errorf("with runtime collectors and const labels: %v", err)
	}
}

// TestInterceptorScrape serves the gRPC health service on 127.0.0.1 behind the interceptor,
// makes successful and failing calls, and scrapes the result over HTTP as Prometheus would.
func TestInterceptorScrape(t *testing.T) {
	// Every request takes exactly 1ms on this clock: each reading advances it by 1ms.
	base := time.Unix(1_800_000_000, 0)
	var ticks int64
	clock := func() time.Time {
		ticks++
		return base.Add(time.Duration(ticks) * time.Millisecond)
	}
	m, reg := newMetrics(t, metrics.Options{Now: clock})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(m.UnaryInterceptor()), grpc.ChainStreamInterceptor(m.StreamInterceptor()))
	hs := health.NewServer()
	hs.SetServingStatus("medicus.trust.v1.Trust", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(cc)
	// The interceptor runs on the server goroutines: serialize the calls so the fake clock is
	// read by one request at a time.
	for range 3 {
		if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "medicus.trust.v1.Trust"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown service: %v, want NotFound", err)
	}

	want := `
# HELP trustd_grpc_requests_total gRPC requests handled, by full method and status code.
# TYPE trustd_grpc_requests_total counter
trustd_grpc_requests_total{code="NotFound",method="/grpc.health.v1.Health/Check"} 1
trustd_grpc_requests_total{code="OK",method="/grpc.health.v1.Health/Check"} 3
# HELP trustd_grpc_in_flight_requests gRPC requests being handled now.
# TYPE trustd_grpc_in_flight_requests gauge
trustd_grpc_in_flight_requests 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), metrics.NameRequests, metrics.NameInFlight); err != nil {
		t.Error(err)
	}

	web := httptest.NewServer(metrics.Handler(reg))
	t.Cleanup(web.Close)
	if err := testutil.ScrapeAndCompare(web.URL, strings.NewReader(want), metrics.NameRequests, metrics.NameInFlight); err != nil {
		t.Errorf("scrape: %v", err)
	}
	st, err := metrics.FetchStatus(ctx, web.Client(), web.URL)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Methods) != 1 {
		t.Fatalf("status methods: %+v", st.Methods)
	}
	ms := st.Methods[0]
	if ms.Method != "/grpc.health.v1.Health/Check" || ms.Requests != 4 || ms.Errors != 1 {
		t.Errorf("status: %+v, want 4 requests and 1 error", ms)
	}
	// All four took 1ms, in the (0.5ms, 1ms] bucket.
	if ms.P50 <= 0.0005 || ms.P50 > 0.001 || ms.P99 <= 0.0005 || ms.P99 > 0.001 {
		t.Errorf("p50 %v, p99 %v: want within (0.5ms, 1ms]", ms.P50, ms.P99)
	}
	var out strings.Builder
	if err := st.Print(&out); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"/grpc.health.v1.Health/Check", "in flight", "audit appends"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("printed status lacks %q:\n%s", s, out.String())
		}
	}
}

func TestParseStatusRejectsBadPages(t *testing.T) {
	tests := []struct {
		name, page, want string
	}{
		{"empty", "", "no trustd_grpc_requests_total"},
		{"another exporter", "node_load1 0.5\n", "no trustd_grpc_requests_total"},
		{"garbage", "{{{{ not metrics", "parsing"},
		{"HTML error page", "<html><body>502 Bad Gateway</body></html>", "parsing"},
		{"oversized", "# " + strings.Repeat("x", metrics.MaxScrapeSize+10) + "\n", "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := metrics.ParseStatus(strings.NewReader(tc.page))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestFetchStatusHTTPError(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusForbidden)
	}))
	t.Cleanup(web.Close)
	if _, err := metrics.FetchStatus(context.Background(), web.Client(), web.URL); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("err = %v, want the HTTP status", err)
	}
}

func TestStatusQuantiles(t *testing.T) {
	page := `# TYPE trustd_grpc_requests_total counter
trustd_grpc_requests_total{code="OK",method="/m/A"} 100
trustd_grpc_requests_total{code="OK",method="/m/B"} 0
# TYPE trustd_grpc_request_duration_seconds histogram
trustd_grpc_request_duration_seconds_bucket{method="/m/A",le="0.01"} 50
trustd_grpc_request_duration_seconds_bucket{method="/m/A",le="0.02"} 98
trustd_grpc_request_duration_seconds_bucket{method="/m/A",le="0.04"} 100
trustd_grpc_request_duration_seconds_bucket{method="/m/A",le="+Inf"} 100
trustd_grpc_request_duration_seconds_sum{method="/m/A"} 1.5
trustd_grpc_request_duration_seconds_count{method="/m/A"} 100
`
	st, err := metrics.ParseStatus(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method   string
		p50, p99 float64
	}{
		{"/m/A", 0.01, 0.03},
		{"/m/B", math.NaN(), math.NaN()},
	}
	for i, tc := range tests {
		got := st.Methods[i]
		if got.Method != tc.method || !near(got.P50, tc.p50) || !near(got.P99, tc.p99) {
			t.Errorf("%s: p50 %v p99 %v, want %v %v", got.Method, got.P50, got.P99, tc.p50, tc.p99)
		}
	}
}

func near(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) < 1e-9
}

func TestCertificateExpiryGauge(t *testing.T) {
	notAfter := time.Unix(1_900_000_000, 0)
	_, reg := newMetrics(t, metrics.Options{CertNotAfter: func() time.Time { return notAfter }})
	want := `
# HELP trustd_tls_certificate_not_after_timestamp_seconds When the served TLS certificate expires, as a Unix timestamp.
# TYPE trustd_tls_certificate_not_after_timestamp_seconds gauge
trustd_tls_certificate_not_after_timestamp_seconds 1.9e+09
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), metrics.NameCertNotAfter); err != nil {
		t.Error(err)
	}
	page, err := testutil.GatherAndFormat(reg, expfmt.TypeTextPlain, metrics.NameCertNotAfter)
	if err != nil {
		t.Fatal(err)
	}
	st, err := metrics.ParseStatus(strings.NewReader(string(page) + "# TYPE trustd_grpc_requests_total counter\ntrustd_grpc_requests_total{code=\"OK\",method=\"/m/A\"} 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !st.CertNotAfter.Equal(notAfter) {
		t.Errorf("status certificate expiry %v, want %v", st.CertNotAfter, notAfter)
	}
	// A renewal shows at the next scrape.
	notAfter = notAfter.Add(time.Hour)
	want = strings.Replace(want, "1.9e+09", "1.9000036e+09", 1)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), metrics.NameCertNotAfter); err != nil {
		t.Error(err)
	}
}
