package jwks

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Fetches are coalesced and rate-limited by one mechanism: the fetch in progress, c.inflight,
// and the start of the last fetch, c.lastFetch, both guarded by c.mu. Every fetch (the start,
// the background schedule, retries, unknown-kid refreshes) begins in startFetch, which under
// c.mu, in this order:
//
//  1. joins the fetch in progress, if there is one, whatever the floor says: it may bring the
//     kid its caller is looking for;
//  2. refuses (nil) while Run is not running, or less than MinRefreshInterval after the start
//     of the last fetch: that floor holds for every trigger, and for every unknown kid at once;
//  3. otherwise records now as the start of the last fetch and runs the fetch in a goroutine
//     under Run's context. The fetch belongs to the cache, not to whoever started it, so a
//     caller giving up does not cancel it for the others.
//
// A fetch installs its result, then clears c.inflight under c.mu, then closes done. So at most
// one fetch runs at a time, the next one sees everything the previous one wrote (the fields of
// Cache owned by the fetch in progress need no lock of their own), and a caller woken by done
// sees the new key set. Callers wait on done and on their own context, whichever ends first.

// fetchCall is one fetch in progress. err is its result, to be read once done is closed.
type fetchCall struct {
	done chan struct{}
	err  error
}

// startFetch joins the fetch in progress or starts one; nil when none may start (see above).
// The background trigger (triggerInterval) is counted as triggerStart until a fetch has
// succeeded.
//
// parent is the span context of the caller (a check's span, for an unknown kid): a fetch it
// starts is traced as that span's child (trace.go); the zero SpanContext makes it a root.
func (c *Cache) startFetch(trigger string, parent trace.SpanContext) *fetchCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight != nil {
		return c.inflight
	}
	if c.runCtx == nil || c.runCtx.Err() != nil {
		return nil
	}
	now := c.clock.Now()
	if now.Before(c.floorEndsLocked()) {
		return nil
	}
	if trigger == triggerInterval && !c.st.fetched {
		trigger = triggerStart
	}
	c.lastFetch = now
	call := &fetchCall{done: make(chan struct{})}
	c.inflight = call
	ctx := c.fetchContext(c.runCtx, parent)
	go func() {
		err := c.refresh(ctx, trigger, now)
		c.mu.Lock()
		c.inflight = nil
		c.mu.Unlock()
		call.err = err
		close(call.done)
	}()
	return call
}

// floorEndsLocked is when the floor next lets a fetch start: MinRefreshInterval after the
// start of the last fetch (zero before the first). It holds c.mu.
func (c *Cache) floorEndsLocked() time.Time {
	if c.lastFetch.IsZero() {
		return time.Time{}
	}
	return c.lastFetch.Add(c.floor)
}

// refreshForKID runs or joins a refresh for an unknown kid and waits for it within ctx. It
// returns the refresh's error; nil when it succeeded or none may start (the current set is
// then the answer).
func (c *Cache) refreshForKID(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	call := c.startFetch(triggerUnknownKID, trace.SpanContextFromContext(ctx))
	if call == nil {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-call.done:
		return call.err
	}
}
