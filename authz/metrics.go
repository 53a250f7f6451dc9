package authz

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-authz/portcullis/reason"
)

// Fronts, the `front` label values.
const (
	FrontGRPC = "grpc"
	FrontHTTP = "http"
)

// Metrics are the decision series of docs/metrics.md, registered on a caller-given registry.
type Metrics struct {
	duration   *prometheus.HistogramVec
	decisions  *prometheus.CounterVec
	dryRun     *prometheus.CounterVec
	tokenCache *prometheus.CounterVec
	cacheHit   prometheus.Counter
	cacheMiss  prometheus.Counter
}

// NewMetrics creates and registers the decision metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "portcullis_check_duration_seconds",
			Help:    "Time to decide one authorization check, by front and decision.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"front", "decision"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_decisions_total",
			Help: "Authorization decisions served, by front, decision and reason.",
		}, []string{"front", "decision", "reason"}),
		dryRun: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_dry_run_decisions_total",
			Help: "Decisions of dry-run rules as they would have been (the request was allowed), by rule, decision and reason.",
		}, []string{"rule", "decision", "reason"}),
		tokenCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_token_cache_lookups_total",
			Help: "Verified-token cache lookups, by result (hit, miss).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.duration, m.decisions, m.dryRun, m.tokenCache)
	m.cacheHit = m.tokenCache.WithLabelValues("hit")
	m.cacheMiss = m.tokenCache.WithLabelValues("miss")
	// Every series a front can serve exists from the start, at zero, so rates and alerts
	// see them before the first such decision.
	for _, front := range []string{FrontGRPC, FrontHTTP} {
		for _, dec := range []string{"allow", "deny"} {
			m.duration.WithLabelValues(front, dec)
		}
		for _, a := range reason.All() {
			dec := "deny"
			if a.Allow() {
				dec = "allow"
			}
			m.decisions.WithLabelValues(front, dec, a.Code.String())
		}
	}
	return m
}

// TokenCacheLookup counts one verified-token cache lookup.
func (m *Metrics) TokenCacheLookup(hit bool) {
	if hit {
		m.cacheHit.Inc()
	} else {
		m.cacheMiss.Inc()
	}
}

// observe counts a decision and its duration; exemplar, unless nil, labels the duration's
// observation (OpenMetrics exemplars: the trace ID of a sampled check).
func (m *Metrics) observe(front string, d *Decision, seconds float64, exemplar prometheus.Labels) {
	decision := "deny"
	if d.Allow {
		decision = "allow"
	}
	h := m.duration.WithLabelValues(front, decision)
	if exemplar == nil {
		h.Observe(seconds)
	} else if eo, ok := h.(prometheus.ExemplarObserver); ok {
		eo.ObserveWithExemplar(seconds, exemplar)
	} else {
		h.Observe(seconds)
	}
	m.decisions.WithLabelValues(front, decision, string(d.Reason)).Inc()
	if ev := d.DryRun; ev != nil {
		would := "deny"
		if ev.Allow {
			would = "allow"
		}
		m.dryRun.WithLabelValues(d.Rule, would, string(ev.Reason)).Inc()
	}
}
