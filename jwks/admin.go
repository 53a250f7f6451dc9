package jwks

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Errors of RefreshNow.
var (
	// ErrRefreshTooSoon: the last fetch started less than MinRefreshInterval ago, so none was
	// sent; RefreshNow says when the floor ends.
	ErrRefreshTooSoon = errors.New("jwks: the last fetch started less than min_refresh_interval ago")
	// ErrStaticSet: the key set is a jwks_file, never fetched.
	ErrStaticSet = errors.New("jwks: the key set is a jwks_file, which is never fetched")
	// ErrNotRunning: Run is not running (not started yet, or stopped).
	ErrNotRunning = errors.New("jwks: the cache is not running")
)

// RefreshNow fetches the key set now, on an operator's request (trigger "admin" in
// portcullis_jwks_refreshes_total), or joins the fetch in progress, and waits for it within
// ctx. It is one more trigger of the one fetch mechanism (coalesce.go): a fetch in progress is
// joined, not doubled, and the floor holds, so under MinRefreshInterval after the last fetch
// nothing is sent and it returns ErrRefreshTooSoon with the time left until the floor ends.
// Otherwise it returns the fetch's own error (the last good set is kept, as for any failed
// fetch), ErrStaticSet, ErrNotRunning, or ctx's error; nil when the fetch succeeded. Status
// then reports the outcome.
func (c *Cache) RefreshNow(ctx context.Context) (retryAfter time.Duration, err error) {
	if c.static {
		return 0, ErrStaticSet
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	call := c.startFetch(triggerAdmin, trace.SpanContextFromContext(ctx))
	if call == nil {
		c.mu.Lock()
		running := c.runCtx != nil && c.runCtx.Err() == nil
		left := c.floorEndsLocked().Sub(c.clock.Now())
		c.mu.Unlock()
		if !running {
			return 0, ErrNotRunning
		}
		return max(left, time.Nanosecond), ErrRefreshTooSoon
	}
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-call.done:
		return 0, call.err
	}
}
