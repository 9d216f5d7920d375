package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/medicus-cloud/trust/attest"
)

// Collateral freshness (issue 16): the age of each item of collateral the verifiers hold, per
// TEE and platform, so that an alert fires well before a failing refresh reaches the maximum
// age and verification fails closed.
const (
	NameCollateralAge     = "trustd_collateral_age_seconds"
	NameCollateralFailing = "trustd_collateral_refresh_failing"
	// NameCollateralStoreErrors counts failed operations on the collateral store that replicas
	// share (attest/collstore); each costs a fetch, never a verification.
	NameCollateralStoreErrors = "trustd_collateral_store_errors_total"
)

// RegisterCollateralStoreErrors registers the shared collateral store's error counter on reg and
// returns its increment by operation ("load", "store", "lease", "release").
func RegisterCollateralStoreErrors(reg prometheus.Registerer) (func(op string), error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameCollateralStoreErrors,
		Help: "Failed operations on the collateral store shared by replicas, by operation; the verifier fetches itself."}, []string{"op"})
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	return func(op string) { c.WithLabelValues(op).Inc() }, nil
}

// collateralCollector reads the verifiers' collateral at each scrape.
type collateralCollector struct {
	age, failing *prometheus.Desc
	now          func() time.Time
	sources      []attest.CollateralReporter
}

// RegisterCollateral registers the collateral age and refresh-failing gauges of sources on reg.
// now defaults to time.Now.
func RegisterCollateral(reg prometheus.Registerer, constLabels prometheus.Labels, now func() time.Time, sources ...attest.CollateralReporter) error {
	if now == nil {
		now = time.Now
	}
	labels := []string{"tee", "platform", "item"}
	return reg.Register(&collateralCollector{now: now, sources: sources,
		age: prometheus.NewDesc(NameCollateralAge, "Seconds since the collateral in use was fetched (or read from the collateral directory), by TEE, platform and item.",
			labels, constLabels),
		failing: prometheus.NewDesc(NameCollateralFailing, "1 while the last refresh of the item failed and the last good copy serves (until the maximum age).",
			labels, constLabels),
	})
}

func (c *collateralCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.age
	ch <- c.failing
}

func (c *collateralCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, s := range c.sources {
		for _, a := range s.CollateralAges() {
			lv := []string{string(a.TEE), a.Platform, a.Item}
			ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, now.Sub(a.FetchedAt).Seconds(), lv...)
			f := 0.0
			if a.Failing {
				f = 1
			}
			ch <- prometheus.MustNewConstMetric(c.failing, prometheus.GaugeValue, f, lv...)
		}
	}
}
