package jwks

import (
	"context"
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-authz/portcullis/internal/idpurl"
)

const (
	// jitter spreads refreshes by ±10% so replicas do not fetch in lock-step.
	jitter = 0.10
	// maxRetryBackoff caps the wait between attempts after failures (never below the minimum
	// refresh interval): a replica that has no keys yet must notice a recovered provider soon.
	maxRetryBackoff = time.Minute
	// maxFirstLoadBackoff caps that wait instead while no key set was ever loaded (never
	// below the minimum refresh interval): until then every token of the issuer is answered
	// 503, and an identity provider that is still starting (Keycloak takes minutes) is used
	// within seconds of its coming up.
	maxFirstLoadBackoff = 10 * time.Second
)

// Run loads the key set and keeps it fresh until ctx ends; it blocks, so callers run it in a
// goroutine. For a JWKS file it only waits for ctx.
//
// The first fetch happens at once. If it fails and nothing is loaded, the set persisted in
// CacheDir (if any) is served, marked stale. Failed fetches are retried in the background
// without end, backing off from MinRefreshInterval, doubling, up to one minute (or
// RefreshInterval if shorter; never below MinRefreshInterval), or up to 10 seconds while no key
// set was ever loaded (fetched or persisted). After a success the next fetch
// is due after RefreshInterval, or the response's max-age/Expires if shorter, ±10% jitter,
// never sooner than MinRefreshInterval. A cache runs once: a second Run returns at once.
// Run returns only once the fetch in progress, if any, has ended.
func (c *Cache) Run(ctx context.Context) {
	c.mu.Lock()
	twice := c.started
	c.started = true
	if !twice && !c.static {
		c.runCtx = ctx // from now on fetches may start (coalesce.go)
	}
	c.mu.Unlock()
	switch {
	case twice:
		c.log.Error("jwks: Run called twice; the second call does nothing")
		return
	case c.static:
		<-ctx.Done()
		return
	}
	defer c.stopped()
	c.warnPlainHTTP()
	for ctx.Err() == nil {
		if wait := c.untilDue(); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-c.clock.After(wait):
			}
			continue
		}
		// Joins an unknown-kid refresh in progress rather than starting a second fetch.
		if call := c.startFetch(triggerInterval, trace.SpanContext{}); call != nil {
			<-call.done
		}
	}
}

// stopped ends Run: no fetch may start any more, and the one in progress (its context has
// ended) is waited for, so that none outlives Run.
func (c *Cache) stopped() {
	c.mu.Lock()
	c.runCtx = nil
	call := c.inflight
	c.mu.Unlock()
	if call != nil {
		<-call.done
	}
}

// untilDue is the wait before the background loop's next fetch.
func (c *Cache) untilDue() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dueLocked().Sub(c.clock.Now())
}

// dueLocked is when the background loop fetches next: the scheduled time, but never before
// the floor ends. It holds c.mu.
func (c *Cache) dueLocked() time.Time {
	due := c.st.nextDue
	if floor := c.floorEndsLocked(); floor.After(due) {
		due = floor
	}
	return due
}

// refresh is the body of one fetch, started at now by startFetch: it fetches the key set,
// installs it if it is usable, and records the outcome and the next due time. When the set
// cannot be fetched and nothing is loaded, it falls back once on the persisted set.
func (c *Cache) refresh(ctx context.Context, trigger string, now time.Time) (err error) {
	ctx, end := c.startSpan(ctx, spanRefresh, trace.SpanKindInternal, attribute.String("portcullis.trigger", trigger))
	defer func() { end(0, err) }()
	parsed, skipped, uri, guidance, err := c.fetch(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
		return ctx.Err() // shutting down: not the provider's failure
	case err != nil:
		c.failed(trigger, now, err)
		if !c.triedPersisted && !c.Ready() {
			c.triedPersisted = true
			c.loadPersisted()
		}
		return err
	}
	c.succeeded(trigger, now, parsed, skipped, uri, guidance)
	return nil
}

func (c *Cache) succeeded(trigger string, now time.Time, parsed []parsedKey, skipped []skippedKey, uri string, guidance time.Duration) {
	next := newSnapshot(parsed)
	prev := c.snap.Load()
	changed := prev == nil || prev.fingerprint != next.fingerprint
	if changed {
		c.snap.Store(next)
	} else {
		next = prev
	}
	wait := c.successInterval(guidance)

	c.mu.Lock()
	firstFetch := !c.st.fetched
	wasPersisted := c.st.source == SourcePersisted
	c.st.source = SourceFetched
	c.st.jwksURI = idpurl.Redacted(uri)
	c.st.lastSuccess = now
	c.st.lastAttempt = now
	c.st.lastErr = nil
	c.st.failures = 0
	c.st.fetched = true
	c.st.nextDue = now.Add(wait)
	c.mu.Unlock()
	if changed {
		c.changed()
	}

	c.metrics.refreshed(trigger, nil)
	c.metrics.loaded(len(next.keys))
	c.metrics.succeeded(float64(now.UnixNano()) / 1e9)
	c.logSkipped(skipped, changed || firstFetch)
	switch {
	case prev == nil || wasPersisted && firstFetch:
		c.log.Info("jwks: key set loaded", "jwks_uri", idpurl.Redacted(uri), "keys", len(next.keys), "kids", next.kids(), "trigger", trigger, "next_refresh", wait)
	case changed:
		added, removed := diffKIDs(prev, next)
		c.log.Info("jwks: key set changed", "added", added, "removed", removed, "keys", len(next.keys), "trigger", trigger, "next_refresh", wait)
	default:
		c.log.Debug("jwks: key set unchanged", "keys", len(next.keys), "trigger", trigger, "next_refresh", wait)
	}
	c.persist(next, uri, now)
}

func (c *Cache) failed(trigger string, now time.Time, err error) {
	c.mu.Lock()
	c.st.lastAttempt = now
	c.st.lastErr = err
	c.st.failures++
	failures := c.st.failures
	wait := c.retryInterval(failures)
	c.st.nextDue = now.Add(wait)
	c.mu.Unlock()

	c.metrics.refreshed(trigger, err)
	switch {
	case c.Ready():
		c.log.Warn("jwks: refresh failed; serving the last good key set", "err", err, "trigger", trigger, "failures", failures, "retry_in", wait)
	case failures == 1 && c.cacheDir != "":
		c.log.Warn("jwks: first fetch failed; looking for a persisted key set", "err", err, "dir", c.cacheDir, "retry_in", wait)
	default:
		c.log.Error("jwks: no key set yet; tokens of this issuer are answered 503", "err", err, "trigger", trigger, "failures", failures, "retry_in", wait)
	}
}

// changed reports a newly installed key set to Options.OnChange.
func (c *Cache) changed() {
	if c.onChange != nil {
		c.onChange()
	}
}

// successInterval is the wait after a successful fetch: RefreshInterval, or the response's
// freshness if shorter, jittered, never below the floor.
func (c *Cache) successInterval(guidance time.Duration) time.Duration {
	d := c.interval
	if guidance > 0 && guidance < d {
		d = guidance
	}
	return max(c.jittered(d), c.floor)
}

// retryInterval is the wait after the n-th consecutive failure: the floor, doubled per
// failure, capped (lower while no key set was ever loaded), jittered, never below the floor.
func (c *Cache) retryInterval(failures int) time.Duration {
	limit := maxRetryBackoff
	if c.snap.Load() == nil {
		limit = maxFirstLoadBackoff
	}
	ceiling := max(c.floor, min(c.interval, limit))
	d := c.floor
	for i := 1; i < failures && d < ceiling; i++ {
		d *= 2
	}
	return max(c.jittered(min(d, ceiling)), c.floor)
}

func (c *Cache) jittered(d time.Duration) time.Duration {
	r := c.rand()
	if math.IsNaN(r) || r < 0 || r >= 1 {
		r = 0.5
	}
	return time.Duration(float64(d) * (1 + (2*r-1)*jitter))
}
