package metrics

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// MaxScrapeSize bounds what ParseStatus reads: trustd's page is a few tens of KiB.
const MaxScrapeSize = 8 << 20

// Status is a summary of one scrape of trustd's metrics page, for `trustctl status`.
type Status struct {
	// Attestations by "tee/verdict".
	Attestations map[string]float64
	// Releases by "kind/outcome".
	Releases map[string]float64
	// Methods by full method name, sorted by name.
	Methods        []MethodStatus
	InFlight       float64
	KeyStoreErrors float64
	AuditAppends   float64
	AuditErrors    float64
	// AuditP99 is the estimated 99th percentile of audit append latency, in seconds.
	AuditP99 float64
	// Rejected by reason ("rate", "concurrency").
	Rejected       map[string]float64
	CollateralHits float64
	CollateralMiss float64
	// CertNotAfter is when the served TLS certificate expires; zero when not reported.
	CertNotAfter time.Time
	// Collateral is the freshness of each item of collateral, by TEE, platform and item.
	Collateral []CollateralStatus
}

// MethodStatus summarizes one gRPC method since trustd started.
type MethodStatus struct {
	Method   string
	Requests float64
	// Errors counts every status but OK.
	Errors float64
	// P50 and P99 are estimated from the histogram buckets (as histogram_quantile does), in
	// seconds; NaN when there were no requests.
	P50, P99 float64
}

// FetchStatus scrapes url (trustd's metrics endpoint) with client and summarizes it.
func FetchStatus(ctx context.Context, client *http.Client, url string) (*Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: scraping %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: scraping %s: HTTP %s", url, resp.Status)
	}
	return ParseStatus(resp.Body)
}

// ParseStatus reads a metrics page in the Prometheus text format and summarizes trustd's series.
func ParseStatus(r io.Reader) (*Status, error) {
	lr := &io.LimitedReader{R: r, N: MaxScrapeSize + 1}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(lr)
	if lr.N <= 0 {
		return nil, fmt.Errorf("metrics: page larger than %d bytes", MaxScrapeSize)
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: parsing the page: %w", err)
	}
	if _, ok := fams[NameRequests]; !ok {
		return nil, fmt.Errorf("metrics: no %s series: is this trustd's metrics endpoint?", NameRequests)
	}
	s := &Status{Attestations: map[string]float64{}, Releases: map[string]float64{}, Rejected: map[string]float64{}}
	for _, m := range fams[NameAttestations].GetMetric() {
		s.Attestations[label(m, "tee")+"/"+label(m, "verdict")] += m.GetCounter().GetValue()
	}
	for _, m := range fams[NameReleases].GetMetric() {
		s.Releases[label(m, "kind")+"/"+label(m, "outcome")] += m.GetCounter().GetValue()
	}
	for _, m := range fams[NameRejected].GetMetric() {
		s.Rejected[label(m, "reason")] += m.GetCounter().GetValue()
	}
	for _, m := range fams[NameCollateral].GetMetric() {
		if label(m, "result") == "hit" {
			s.CollateralHits += m.GetCounter().GetValue()
		} else {
			s.CollateralMiss += m.GetCounter().GetValue()
		}
	}
	if v := sum(fams[NameCertNotAfter]); v > 0 && v < 1e11 {
		s.CertNotAfter = time.Unix(int64(v), 0).UTC()
	}
	s.Collateral = parseCollateral(fams)
	s.InFlight = sum(fams[NameInFlight])
	s.KeyStoreErrors = sum(fams[NameKeyStoreErrors])
	s.AuditErrors = sum(fams[NameAuditErrors])
	if f := fams[NameAuditAppend]; f != nil && len(f.GetMetric()) > 0 {
		h := f.GetMetric()[0].GetHistogram()
		s.AuditAppends = float64(h.GetSampleCount())
		s.AuditP99 = quantile(0.99, h)
	}
	methods := map[string]*MethodStatus{}
	get := func(name string) *MethodStatus {
		if methods[name] == nil {
			methods[name] = &MethodStatus{Method: name, P50: math.NaN(), P99: math.NaN()}
		}
		return methods[name]
	}
	for _, m := range fams[NameRequests].GetMetric() {
		ms := get(label(m, "method"))
		v := m.GetCounter().GetValue()
		ms.Requests += v
		if label(m, "code") != "OK" {
			ms.Errors += v
		}
	}
	for _, m := range fams[NameRequestDuration].GetMetric() {
		ms := get(label(m, "method"))
		ms.P50 = quantile(0.50, m.GetHistogram())
		ms.P99 = quantile(0.99, m.GetHistogram())
	}
	for _, ms := range methods {
		s.Methods = append(s.Methods, *ms)
	}
	sort.Slice(s.Methods, func(i, j int) bool { return s.Methods[i].Method < s.Methods[j].Method })
	return s, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func sum(f *dto.MetricFamily) float64 {
	var t float64
	for _, m := range f.GetMetric() {
		switch {
		case m.Counter != nil:
			t += m.GetCounter().GetValue()
		case m.Gauge != nil:
			t += m.GetGauge().GetValue()
		case m.Untyped != nil:
			t += m.GetUntyped().GetValue()
		}
	}
	return t
}

// quantile estimates the q-quantile from cumulative buckets by linear interpolation inside the
// bucket that holds it, as Prometheus's histogram_quantile does. Above the last finite bound it
// answers that bound. NaN when empty.
func quantile(q float64, h *dto.Histogram) float64 {
	n := float64(h.GetSampleCount())
	if h == nil || n == 0 {
		return math.NaN()
	}
	rank := q * n
	prevBound, prevCount := 0.0, 0.0
	for _, b := range h.GetBucket() {
		ub, c := b.GetUpperBound(), float64(b.GetCumulativeCount())
		if math.IsInf(ub, +1) {
			break
		}
		if c >= rank {
			if c == prevCount {
				return ub
			}
			return prevBound + (ub-prevBound)*(rank-prevCount)/(c-prevCount)
		}
		prevBound, prevCount = ub, c
	}
	return prevBound
}

// Print writes the summary as aligned text.
func (s *Status) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "in flight\t%.0f\n", s.InFlight)
	fmt.Fprintf(tw, "attestations\t%s\n", counts(s.Attestations))
	fmt.Fprintf(tw, "releases\t%s\n", counts(s.Releases))
	fmt.Fprintf(tw, "refused by limits\t%s\n", counts(s.Rejected))
	fmt.Fprintf(tw, "key store errors\t%.0f\n", s.KeyStoreErrors)
	fmt.Fprintf(tw, "audit appends\t%.0f (errors %.0f, p99 %s)\n", s.AuditAppends, s.AuditErrors, ms(s.AuditP99))
	fmt.Fprintf(tw, "collateral cache\t%.0f hits, %.0f misses\n", s.CollateralHits, s.CollateralMiss)
	if !s.CertNotAfter.IsZero() {
		fmt.Fprintf(tw, "tls certificate\texpires %s\n", s.CertNotAfter.Format(time.RFC3339))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "METHOD\tREQUESTS\tERRORS\tP50\tP99")
	for _, m := range s.Methods {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%s\t%s\n", m.Method, m.Requests, m.Errors, ms(m.P50), ms(m.P99))
	}
	printCollateral(tw, s.Collateral)
	return tw.Flush()
}

func counts(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%.0f", k, m[k])
	}
	return strings.Join(parts, " ")
}

func ms(sec float64) string {
	if math.IsNaN(sec) {
		return "-"
	}
	return fmt.Sprintf("%.2fms", sec*1000)
}
