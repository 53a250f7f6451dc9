package spans

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestOff: a nil tracer starts nothing, allocates nothing, and leaves the context as it was,
// though that context carries a recording span.
func TestOff(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	parent, check := tp.Tracer("test").Start(context.Background(), "check")
	defer check.End()
	err := errors.New("down")
	allocs := testing.AllocsPerRun(100, func() {
		ctx, span := Start(parent, nil, "call", trace.SpanKindClient, "https://sso.example")
		if ctx != parent || span.On() {
			t.Fatal("a nil tracer started a span")
		}
		span.End(503, err)
	})
	if allocs != 0 {
		t.Errorf("%v allocations with tracing off, want 0", allocs)
	}
}

// TestEnd: a span is the child of the context's, names its issuer, and records the status
// code and, for an error, the error status with its message.
func TestEnd(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	parent, check := tp.Tracer("test").Start(context.Background(), "check")
	for _, tt := range []struct {
		status int
		err    error
		attrs  string
		code   codes.Code
		msg    string
	}{
		{200, nil, "portcullis.issuer=iss k=v http.response.status_code=200", codes.Unset, ""},
		{0, errors.New("connection refused"), "portcullis.issuer=iss k=v", codes.Error, "connection refused"},
	} {
		exp.Reset()
		_, span := Start(parent, tp.Tracer("test"), "call", trace.SpanKindClient, "iss")
		if !span.On() {
			t.Fatal("not recording")
		}
		span.SetAttributes(attribute.String("k", "v"))
		span.End(tt.status, tt.err)
		got := exp.GetSpans()
		if len(got) != 1 {
			t.Fatalf("%d spans", len(got))
		}
		s := got[0]
		var attrs string
		for _, a := range s.Attributes {
			attrs += " " + string(a.Key) + "=" + a.Value.Emit()
		}
		if s.Parent.SpanID() != check.SpanContext().SpanID() || s.SpanKind != trace.SpanKindClient || attrs[1:] != tt.attrs ||
			s.Status.Code != tt.code || s.Status.Description != tt.msg {
			t.Errorf("span parent %s kind %s [%s] %s %q", s.Parent.SpanID(), s.SpanKind, attrs[1:], s.Status.Code, s.Status.Description)
		}
	}
}
