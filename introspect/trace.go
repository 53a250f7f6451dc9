package introspect

import (
	"context"
	"net/url"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-authz/portcullis/tracing/spans"
)

// Spans of the introspection calls (Options.Tracer). The call a check makes is a child of the
// check's span: Check's context carries it (though not its cancellation: the call belongs to
// every check waiting for it). A check that finds its answer in the cache, or that waits for
// the call another check of the same token is making, makes no call and has no span. Each
// call is one span, "introspect.call", with a child "introspect.discovery" when the call has
// to read the endpoint from the discovery document first. Neither carries the token, the
// client's credentials or the answer.

// Span names.
const (
	spanCall      = "introspect.call"
	spanDiscovery = "introspect.discovery"
)

// AttrResult is the result of an introspect.call span, as the metrics label it: active,
// inactive, error.
const AttrResult = "portcullis.introspection.result"

// startSpan starts a span of the introspector when tracing is on (spans.Start).
func (in *Introspector) startSpan(ctx context.Context, name string) (context.Context, spans.Span) {
	return spans.Start(ctx, in.tracer, name, trace.SpanKindClient, in.issuer)
}

// endCall records the result of a call on its span, the endpoint asked ("" when none was
// known) and its answer's status, and ends it.
func endCall(span spans.Span, endpoint, result string, status int, err error) {
	if span.On() {
		span.SetAttributes(attribute.String(AttrResult, result), attribute.String("http.request.method", "POST"))
		span.SetAttributes(serverAttrs(endpoint)...)
	}
	span.End(status, err)
}

// serverAttrs are the host and port of an endpoint, as OpenTelemetry's HTTP client spans name
// them; not its path or query, and never its user information.
func serverAttrs(endpoint string) []attribute.KeyValue {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil
	}
	attrs := []attribute.KeyValue{attribute.String("server.address", u.Hostname())}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if p, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, attribute.Int("server.port", p))
	}
	return attrs
}
