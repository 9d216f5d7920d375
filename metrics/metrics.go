// Package metrics holds trustd's observability at the gRPC edge: Prometheus collectors and the
// interceptors that feed them, a structured access log (AccessLog), and Status, which summarizes
// a scrape for `trustctl status`.
//
// The service, the audit log and the verifiers do not import Prometheus: each defines the small
// observer interface it needs (for example an AuditAppend method) and is handed a *Metrics, which
// implements all of them, or Nop in tests and tools. Recorder gathers those methods in one place.
//
// Collectors are registered on a registry passed in, never on the global one, and label values
// come from small fixed sets so that a client cannot grow the series count. Nothing here ever
// sees a key, a secret, a token or a patient record: labels are TEE types, verdicts, method
// names, status codes and operation names.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/medicus-cloud/trust/release"
)

// Recorder is everything trustd's packages report. Implementations must not block.
type Recorder interface {
	// Attestation counts one decision: tee as in attest.TEE (one of attest/schemes.Names),
	// verdict one of release.Outcomes (the audit record's verdict).
	Attestation(tee string, verdict release.Outcome)
	// Release counts one release call by kind and outcome, in package release's vocabulary.
	Release(kind release.Kind, outcome release.Outcome)
	// UnverifiedEvidence counts one Attest whose evidence failed verification. trustd records
	// such calls in the audit log only as summaries; this counter sees every one.
	UnverifiedEvidence(tee string)
	// KeyStoreError counts a failed key store operation (for example "generate", "unwrap",
	// "secret").
	KeyStoreError(op string)
	// AuditAppend observes how long one durable append took and whether it failed.
	AuditAppend(d time.Duration, err error)
	// CollateralCache counts a collateral lookup answered from the cache (hit) or fetched
	// (miss); the schemes name their sources ("amd-endorsement", "intel-pcs-tdx",
	// "intel-pcs-sgx").
	CollateralCache(source string, hit bool)
	// TCBGrace counts one attestation or release decided under the previous TCB status of a
	// platform an Intel TCB recovery downgraded, within its policy's tcbRecoveryGrace.
	TCBGrace(tee string)
}

// Nop is a Recorder that records nothing: the default where no metrics are wanted.
type Nop struct{}

// The Nop methods do nothing.
func (Nop) Attestation(string, release.Outcome)   {}
func (Nop) Release(release.Kind, release.Outcome) {}
func (Nop) UnverifiedEvidence(string)             {}
func (Nop) KeyStoreError(string)                  {}
func (Nop) AuditAppend(time.Duration, error)      {}
func (Nop) CollateralCache(string, bool)          {}
func (Nop) TCBGrace(string)                       {}
func (Nop) Rejected(fullMethod, reason string)    {}

// Metric names, for scrapers and for Status.
const (
	NameAttestations    = "trustd_attestations_total"
	NameReleases        = "trustd_releases_total"
	NameUnverified      = "trustd_attest_unverified_evidence_total"
	NameRequests        = "trustd_grpc_requests_total"
	NameRequestDuration = "trustd_grpc_request_duration_seconds"
	NameInFlight        = "trustd_grpc_in_flight_requests"
	NameKeyStoreErrors  = "trustd_keystore_errors_total"
	NameAuditAppend     = "trustd_audit_append_duration_seconds"
	NameAuditErrors     = "trustd_audit_append_errors_total"
	NameCollateral      = "trustd_collateral_cache_requests_total"
	NameRejected        = "trustd_limits_rejected_total"
	NameCertNotAfter    = "trustd_tls_certificate_not_after_timestamp_seconds"
	NameTCBGrace        = "trustd_tcb_grace_total"
)

// LatencyBuckets span a cached attestation (well under a millisecond of crypto) to one that
// fetches collateral from a vendor service (seconds).
var LatencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Options configure New. The zero value is fine.
type Options struct {
	// ConstLabels are added to every series, for example {"replica": "trustd-0"}.
	ConstLabels prometheus.Labels
	// Now times requests; it defaults to time.Now.
	Now func() time.Time
	// CertNotAfter, if set, reports when the served TLS certificate expires (for example
	// func() time.Time { return tlsServer.Leaf().NotAfter }). A failed renewal keeps the old
	// certificate in service, so this gauge is how an alert learns of it in time.
	CertNotAfter func() time.Time
	// TEEs are the values of the tee label (trustd passes attest/schemes.Names()); any other
	// TEE counts as "other". Nil accepts any short lowercase name.
	TEEs []string
}

// Metrics is the Prometheus Recorder and the source of the gRPC interceptors.
type Metrics struct {
	attestations *prometheus.CounterVec
	releases     *prometheus.CounterVec
	unverified   *prometheus.CounterVec
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	inFlight     prometheus.Gauge
	ksErrors     *prometheus.CounterVec
	auditDur     prometheus.Histogram
	auditErrs    prometheus.Counter
	collateral   *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	tcbGrace     *prometheus.CounterVec
	now          func() time.Time
	tees         func(string) string // bounds the tee label
}

var _ Recorder = (*Metrics)(nil)

// New creates trustd's collectors and registers them on reg, which is required.
func New(reg prometheus.Registerer, o Options) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("metrics: a registry is required (the global one is never used)")
	}
	cl := o.ConstLabels
	if o.Now == nil {
		o.Now = time.Now
	}
	m := &Metrics{
		now:  o.Now,
		tees: name,
		attestations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameAttestations, ConstLabels: cl,
			Help: "Attestation decisions by TEE type and verdict."}, []string{"tee", "verdict"}),
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameReleases, ConstLabels: cl,
			Help: "Release calls (secrets, data keys, unwraps) by kind and outcome."}, []string{"kind", "outcome"}),
		unverified: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameUnverified, ConstLabels: cl,
			Help: "Attest calls whose evidence failed verification (audited only as summaries), by TEE type."}, []string{"tee"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameRequests, ConstLabels: cl,
			Help: "gRPC requests handled, by full method and status code."}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: NameRequestDuration, ConstLabels: cl,
			Help: "gRPC request latency by full method.", Buckets: LatencyBuckets}, []string{"method"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: NameInFlight, ConstLabels: cl,
			Help: "gRPC requests being handled now."}),
		ksErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameKeyStoreErrors, ConstLabels: cl,
			Help: "Failed key store operations by operation."}, []string{"op"}),
		auditDur: prometheus.NewHistogram(prometheus.HistogramOpts{Name: NameAuditAppend, ConstLabels: cl,
			Help: "Time for one audit record to become durable.", Buckets: LatencyBuckets}),
		auditErrs: prometheus.NewCounter(prometheus.CounterOpts{Name: NameAuditErrors, ConstLabels: cl,
			Help: "Audit appends that failed (the request was refused)."}),
		collateral: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameCollateral, ConstLabels: cl,
			Help: "Collateral lookups by source and result (hit, miss)."}, []string{"source", "result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameRejected, ConstLabels: cl,
			Help: "Requests refused with ResourceExhausted by the limits, by method and reason."}, []string{"method", "reason"}),
		tcbGrace: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameTCBGrace, ConstLabels: cl,
			Help: "Attestations and releases decided under a platform's previous TCB status within a TCB recovery grace, by TEE type."}, []string{"tee"}),
	}
	cs := []prometheus.Collector{m.attestations, m.releases, m.unverified, m.requests, m.duration, m.inFlight,
		m.ksErrors, m.auditDur, m.auditErrs, m.collateral, m.rejected, m.tcbGrace}
	if o.TEEs != nil {
		allowed := set(o.TEEs...)
		m.tees = func(t string) string { return oneOf(allowed, t) }
	}
	if f := o.CertNotAfter; f != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: NameCertNotAfter, ConstLabels: cl,
			Help: "When the served TLS certificate expires, as a Unix timestamp."},
			func() float64 { return float64(f().Unix()) }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// NewRegistry returns a fresh registry with the Go runtime and process collectors, for trustd's
// own use.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Handler serves the registry in the Prometheus exposition format. Serve it on a listener of its
// own (with TLS outside --dev): it reveals load, not secrets, but still tells an attacker a lot.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

var (
	reasons = set("rate", "concurrency")
)

func set[S ~string](vs ...S) map[string]bool {
	m := make(map[string]bool, len(vs))
	for _, v := range vs {
		m[string(v)] = true
	}
	return m
}

// oneOf returns v if it is in the allowed set and "other" otherwise, bounding label cardinality.
func oneOf(allowed map[string]bool, v string) string {
	if allowed[v] {
		return v
	}
	return "other"
}

// name keeps short lowercase identifiers (operation and source names come from code, but a bug
// must not turn an error message into a label).
func name(v string) string {
	if v == "" || len(v) > 32 {
		return "other"
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return "other"
		}
	}
	return v
}

// Attestation implements Recorder.
func (m *Metrics) Attestation(tee string, verdict release.Outcome) {
	m.attestations.WithLabelValues(m.tees(strings.ToLower(tee)), outcome(verdict)).Inc()
}

// Release implements Recorder.
func (m *Metrics) Release(kind release.Kind, o release.Outcome) {
	k := "other"
	if kind.Valid() {
		k = string(kind)
	}
	m.releases.WithLabelValues(k, outcome(o)).Inc()
}

// TCBGrace implements Recorder.
func (m *Metrics) TCBGrace(tee string) {
	m.tcbGrace.WithLabelValues(m.tees(strings.ToLower(tee))).Inc()
}

// UnverifiedEvidence implements Recorder.
func (m *Metrics) UnverifiedEvidence(tee string) {
	m.unverified.WithLabelValues(m.tees(strings.ToLower(tee))).Inc()
}

func outcome(o release.Outcome) string {
	if o.Valid() {
		return string(o)
	}
	return "other"
}

// KeyStoreError implements Recorder.
func (m *Metrics) KeyStoreError(op string) { m.ksErrors.WithLabelValues(name(op)).Inc() }

// AuditAppend implements Recorder.
func (m *Metrics) AuditAppend(d time.Duration, err error) {
	m.auditDur.Observe(d.Seconds())
	if err != nil {
		m.auditErrs.Inc()
	}
}

// CollateralCache implements Recorder.
func (m *Metrics) CollateralCache(source string, hit bool) {
	r := "miss"
	if hit {
		r = "hit"
	}
	m.collateral.WithLabelValues(name(source), r).Inc()
}

// Rejected implements limits.Observer.
func (m *Metrics) Rejected(fullMethod, reason string) {
	m.rejected.WithLabelValues(fullMethod, oneOf(reasons, reason)).Inc()
}

// UnaryInterceptor counts and times every unary call. Put it first in the chain, so that it also
// sees calls the limits or the role check refuse. The method label is safe from client input:
// gRPC runs interceptors only for registered methods.
func (m *Metrics) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		m.inFlight.Inc()
		start := m.now()
		resp, err := handler(ctx, req)
		m.observe(info.FullMethod, start, err)
		m.inFlight.Dec()
		return resp, err
	}
}

// StreamInterceptor counts and times every stream, from open to close.
func (m *Metrics) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		m.inFlight.Inc()
		start := m.now()
		err := handler(srv, ss)
		m.observe(info.FullMethod, start, err)
		m.inFlight.Dec()
		return err
	}
}

func (m *Metrics) observe(method string, start time.Time, err error) {
	m.duration.WithLabelValues(method).Observe(m.now().Sub(start).Seconds())
	m.requests.WithLabelValues(method, status.Code(err).String()).Inc()
}
