package jwks

import "github.com/prometheus/client_golang/prometheus"

// Metrics holds the key-set series of docs/metrics.md. One Metrics serves every issuer's cache; each
// series carries an issuer label. Create it once per registry with NewMetrics.
type Metrics struct {
	lookups     *prometheus.CounterVec
	refreshes   *prometheus.CounterVec
	keys        *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
}

// Label values of portcullis_jwks_refreshes_total{trigger}.
const (
	triggerStart      = "start"       // attempts until the first successful fetch
	triggerInterval   = "interval"    // the background schedule, retries after failures included
	triggerUnknownKID = "unknown_kid" // a token named a kid the set does not hold
	triggerAdmin      = "admin"       // POST /admin/jwks/refresh (Cache.RefreshNow)
)

// NewMetrics creates the series and registers them on reg (nil = not registered, for tests
// and one-shot commands that do not expose metrics). It panics if reg already holds them, as
// prometheus.MustRegister does.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_jwks_lookups_total",
			Help: "Key lookups by issuer; hit = answered from the current key set without a refresh.",
		}, []string{"issuer", "result"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_jwks_refreshes_total",
			Help: "Key set fetches by issuer, result and what triggered them.",
		}, []string{"issuer", "result", "trigger"}),
		keys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "portcullis_jwks_keys",
			Help: "Usable verification keys in the current set of each issuer.",
		}, []string{"issuer"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "portcullis_jwks_last_success_timestamp_seconds",
			Help: "Unix time of the last successful key set fetch of each issuer.",
		}, []string{"issuer"}),
	}
	if reg != nil {
		reg.MustRegister(m.lookups, m.refreshes, m.keys, m.lastSuccess)
	}
	return m
}

// issuerMetrics are one issuer's series. The counters are resolved (and so exported at zero)
// up front, so the lookup path only increments; the gauges appear with their first value, so
// a cache that never loaded keys exports no misleading 0 timestamp. A nil *issuerMetrics
// (no Metrics given) does nothing.
type issuerMetrics struct {
	m         *Metrics
	issuer    string
	hit, miss prometheus.Counter
	refreshes map[[2]string]prometheus.Counter // {result, trigger}
}

func (m *Metrics) forIssuer(issuer string) *issuerMetrics {
	if m == nil {
		return nil
	}
	im := &issuerMetrics{
		m:         m,
		issuer:    issuer,
		hit:       m.lookups.WithLabelValues(issuer, "hit"),
		miss:      m.lookups.WithLabelValues(issuer, "miss"),
		refreshes: map[[2]string]prometheus.Counter{},
	}
	for _, result := range []string{"success", "error"} {
		for _, trigger := range []string{triggerStart, triggerInterval, triggerUnknownKID, triggerAdmin} {
			im.refreshes[[2]string{result, trigger}] = m.refreshes.WithLabelValues(issuer, result, trigger)
		}
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

func (im *issuerMetrics) refreshed(trigger string, err error) {
	if im == nil {
		return
	}
	result := "success"
	if err != nil {
		result = "error"
	}
	im.refreshes[[2]string{result, trigger}].Inc()
}

func (im *issuerMetrics) loaded(keys int) {
	if im != nil {
		im.m.keys.WithLabelValues(im.issuer).Set(float64(keys))
	}
}

func (im *issuerMetrics) succeeded(unixSeconds float64) {
	if im != nil {
		im.m.lastSuccess.WithLabelValues(im.issuer).Set(unixSeconds)
	}
}
