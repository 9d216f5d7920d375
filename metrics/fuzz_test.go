package metrics_test

import (
	"bytes"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/medicus-cloud/trust/metrics"
)

// FuzzParseStatus: a scraped page is outside input (trustctl status may be pointed anywhere);
// whatever it holds, ParseStatus answers a summary or an error, and never panics.
func FuzzParseStatus(f *testing.F) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		f.Fatal(err)
	}
	m.Attestation("tdx", "allow")
	m.Release("secret", "allow")
	m.AuditAppend(0, nil)
	m.Rejected("/m/A", "rate")
	page, err := testutil.GatherAndFormat(reg, expfmt.TypeTextPlain, metrics.NameAttestations, metrics.NameReleases,
		metrics.NameAuditAppend, metrics.NameRejected, metrics.NameRequests, metrics.NameInFlight)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(page)
	f.Add([]byte("# TYPE trustd_grpc_requests_total counter\ntrustd_grpc_requests_total{code=\"OK\",method=\"/m/A\"} 1\n"))
	f.Add([]byte("# TYPE trustd_grpc_request_duration_seconds histogram\ntrustd_grpc_request_duration_seconds_bucket{method=\"/m/A\",le=\"+Inf\"} 3\ntrustd_grpc_request_duration_seconds_count{method=\"/m/A\"} 3\ntrustd_grpc_requests_total 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := metrics.ParseStatus(bytes.NewReader(b))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := st.Print(&out); err != nil {
			t.Fatal(err)
		}
	})
}
