package introspect

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values of portcullis_introspection_requests_total{result}.
const (
	resultActive   = "active"
	resultInactive = "inactive"
	resultError    = "error"
)

// Metrics holds the introspection series of docs/metrics.md; one serves every issuer, each
// series carries an issuer label. Create it once per registry with NewMetrics.
type Metrics struct {
	calls    *prometheus.CounterVec
	lookups  *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics creates the series and registers them on reg (nil = not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_introspection_requests_total",
			Help: "Token introspection calls to the authorization server, by issuer and result (active, inactive, error).",
		}, []string{"issuer", "result"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_introspection_cache_lookups_total",
			Help: "Introspection cache lookups, by issuer and result (hit, miss).",
		}, []string{"issuer", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "portcullis_introspection_duration_seconds",
			Help:    "Time of one introspection call (discovery included when it ran), by issuer.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"issuer"}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.lookups, m.duration)
	}
	return m
}

// issuerMetrics are one issuer's series, resolved up front so that they are exported at zero.
// A nil *issuerMetrics does nothing.
type issuerMetrics struct {
	calls     map[string]prometheus.Counter
	hit, miss prometheus.Counter
	duration  prometheus.Observer
}

func (m *Metrics) forIssuer(issuer string) *issuerMetrics {
	if m == nil {
		return nil
	}
	im := &issuerMetrics{
		calls:    map[string]prometheus.Counter{},
		hit:      m.lookups.WithLabelValues(issuer, "hit"),
		miss:     m.lookups.WithLabelValues(issuer, "miss"),
		duration: m.duration.WithLabelValues(issuer),
	}
	for _, r := range []string{resultActive, resultInactive, resultError} {
		im.calls[r] = m.calls.WithLabelValues(issuer, r)
	}
	return im
}

func (im *issuerMetrics) lookup(hit bool) {
	switch {
	case im == nil:
	case hit:
		im.hit.Inc()
	default:
		im.miss.Inc()
	}
}

func (im *issuerMetrics) called(result string, took time.Duration) {
	if im == nil {
		return
	}
	im.calls[result].Inc()
	im.duration.Observe(took.Seconds())
}
