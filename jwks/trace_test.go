package jwks

import (
	"context"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// spanLine is what a test asserts of one span: its name, its parent's span ID (zero for a
// root) and a few attributes.
type spanLine struct {
	name    string
	parent  trace.SpanID
	trigger string // portcullis.trigger, jwks.refresh only
	status  int64  // http.response.status_code, the GETs only
}

func spanLines(spans tracetest.SpanStubs) []spanLine {
	var out []spanLine
	for _, s := range spans {
		l := spanLine{name: s.Name, parent: s.Parent.SpanID()}
		for _, a := range s.Attributes {
			switch a.Key {
			case "portcullis.trigger":
				l.trigger = a.Value.AsString()
			case "http.response.status_code":
				l.status = a.Value.AsInt64()
			}
		}
		out = append(out, l)
	}
	return out
}

func attr(spans tracetest.SpanStubs, name string, key attribute.Key) string {
	for _, s := range spans {
		if s.Name != name {
			continue
		}
		for _, a := range s.Attributes {
			if a.Key == key {
				return a.Value.Emit()
			}
		}
	}
	return ""
}

// TestFetchSpans: the start fetch is a root span with a child per request (discovery, then the
// key set); an unknown-kid refresh made during a check is a child of the check's span, in its
// trace, though the check's cancellation does not reach it.
func TestFetchSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	idp := newTestIdP(t, setOf(t, "rsa1"))
	h := startHarness(t, idp, func(o *Options) { o.Tracer = tp.Tracer("test") })

	start := exp.GetSpans()
	if len(start) != 3 {
		t.Fatalf("start fetch: %d spans, want 3: %+v", len(start), spanLines(start))
	}
	// Ended children come first: discovery, fetch, then the refresh that holds them.
	refresh := start[2]
	want := []spanLine{
		{name: "jwks.discovery", parent: refresh.SpanContext.SpanID(), status: 200},
		{name: "jwks.fetch", parent: refresh.SpanContext.SpanID(), status: 200},
		{name: "jwks.refresh", trigger: "start"},
	}
	for i, got := range spanLines(start) {
		if got != want[i] {
			t.Errorf("start span %d = %+v, want %+v", i, got, want[i])
		}
	}
	if refresh.Parent.IsValid() {
		t.Errorf("the start fetch has parent %s; a background fetch is a root", refresh.Parent.SpanID())
	}
	if got := attr(start, "jwks.fetch", "url.full"); got != idp.URL()+"/jwks" {
		t.Errorf("jwks.fetch url.full = %q", got)
	}
	if got := attr(start, "jwks.refresh", "portcullis.issuer"); got != idp.URL() {
		t.Errorf("jwks.refresh portcullis.issuer = %q", got)
	}
	exp.Reset()

	// A check's span, with a context the check cancels as soon as it has its answer.
	idp.serveKeys(setOf(t, "rsa1", "rsa2"))
	h.clock.Advance(10 * time.Second) // past the floor
	ctx, check := tp.Tracer("test").Start(context.Background(), "check")
	ctx, cancel := context.WithCancel(ctx)
	if _, err := h.cache.Lookup(ctx, "rsa2", jwa.RS256); err != nil {
		t.Fatalf("Lookup(rsa2): %v", err)
	}
	cancel()
	check.End()
	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("unknown-kid refresh: %d spans, want 3: %+v", len(spans), spanLines(spans))
	}
	refresh = spans[1]
	want = []spanLine{
		{name: "jwks.fetch", parent: refresh.SpanContext.SpanID(), status: 200},
		{name: "jwks.refresh", parent: check.SpanContext().SpanID(), trigger: "unknown_kid"},
		{name: "check"},
	}
	for i, got := range spanLines(spans) {
		if got != want[i] {
			t.Errorf("unknown-kid span %d = %+v, want %+v", i, got, want[i])
		}
	}
	if refresh.SpanContext.TraceID() != check.SpanContext().TraceID() {
		t.Errorf("the refresh is in trace %s, the check in %s", refresh.SpanContext.TraceID(), check.SpanContext().TraceID())
	}
}

// TestNoTracerNoSpans: without a tracer the fetch context is Run's own, whatever span the
// caller carries.
func TestNoTracerNoSpans(t *testing.T) {
	c := &Cache{}
	run := context.Background()
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
	if got := c.fetchContext(run, parent); got != run {
		t.Error("fetchContext without a tracer is not Run's context")
	}
	ctx, end := c.startSpan(run, spanRefresh, trace.SpanKindInternal)
	end(0, nil)
	if ctx != run {
		t.Error("startSpan without a tracer changed the context")
	}
}
