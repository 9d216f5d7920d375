package route

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/medicus-cloud/trust/kms"
)

// Metric names. Every series carries the store's name as label "store".
const (
	NameRequests = "trustd_kms_store_requests_total"
	NameDuration = "trustd_kms_store_request_duration_seconds"
	NameUp       = "trustd_kms_store_up"
)

type routeMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	upGauge  *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, stores []string) (*routeMetrics, error) {
	m := &routeMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameRequests,
			Help: "Key store calls by store, operation and result (ok, not_found, invalid, unavailable, denied)."},
			[]string{"store", "op", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: NameDuration,
			Help:    "Key store call latency by store and operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}},
			[]string{"store", "op"}),
		upGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: NameUp,
			Help: "1 when the store's last health check passed, 0 when it failed."}, []string{"store"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.upGauge} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, s := range stores {
		m.upGauge.WithLabelValues(s).Set(1)
	}
	return m, nil
}

// result names an outcome without any detail of the error.
func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, kms.ErrNotFound):
		return "not_found"
	case errors.Is(err, kms.ErrDenied):
		return "denied"
	case errors.Is(err, kms.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, kms.ErrExists):
		return "exists"
	case errors.Is(err, kms.ErrBadWrapped), errors.Is(err, kms.ErrBadContext), errors.Is(err, kms.ErrInvalidName):
		return "invalid"
	}
	return "error"
}

func (m *routeMetrics) observe(store, op string, d time.Duration, err error) {
	m.requests.WithLabelValues(store, op, result(err)).Inc()
	m.duration.WithLabelValues(store, op).Observe(d.Seconds())
}

func (m *routeMetrics) up(store string, ok bool) {
	v := 0.0
	if ok {
		v = 1
	}
	m.upGauge.WithLabelValues(store).Set(v)
}
