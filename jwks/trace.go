package jwks

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-authz/portcullis/tracing/spans"
)

// Spans of the key-set fetches (Options.Tracer). A fetch that a check starts (an unknown kid)
// is a child of the check's span: its context carries the check's span context, though not
// the check's deadline or cancellation, since the fetch belongs to the cache (coalesce.go). A
// background fetch (start, interval, retries) is the root of a trace of its own, which the
// tracer's sampler records or not. Each fetch is one span, "jwks.refresh", with a child span
// per HTTP request: "jwks.discovery" and "jwks.fetch".

// Span names.
const (
	spanRefresh   = "jwks.refresh"
	spanDiscovery = "jwks.discovery"
	spanFetch     = "jwks.fetch"
)

// fetchContext is the context a fetch runs with: Run's, carrying the span context of the
// caller that started it (for a check, its span), when tracing is on.
func (c *Cache) fetchContext(runCtx context.Context, parent trace.SpanContext) context.Context {
	if c.tracer == nil || !parent.IsValid() {
		return runCtx
	}
	return trace.ContextWithSpanContext(runCtx, parent)
}

// startSpan starts a span of the cache when tracing is on (spans.Start); end records err and
// ends it. It returns ctx and a no-op end otherwise.
func (c *Cache) startSpan(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, func(status int, err error)) {
	if c.tracer == nil {
		return ctx, func(int, error) {}
	}
	ctx, span := spans.Start(ctx, c.tracer, name, kind, c.issuer)
	span.SetAttributes(attrs...)
	return ctx, span.End
}
