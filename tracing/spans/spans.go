// Package spans starts the spans of the calls Portcullis makes to an identity provider (key-set
// fetches and discovery in package jwks, token introspection in package introspect), the same
// way for each: a span named for the call, with the issuer it is made for, the HTTP status of
// the answer and, when the call failed, an error status.
//
// It is apart from package tracing, which builds the tracer these calls are given, because
// tracing depends on the packages that make them. A nil tracer is tracing off: Start then starts
// nothing and allocates nothing, and the Span it returns does nothing.
package spans

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Attributes every call's span has (the check's span uses the same names).
const (
	AttrIssuer     = "portcullis.issuer"         // the issuer the call is made for
	AttrStatusCode = "http.response.status_code" // the answer's status; absent when none came
)

// Span is the span of one call; the zero Span (tracing off) does nothing.
type Span struct{ span trace.Span }

// Start starts the span name of a call made for issuer, a child of the span ctx carries (a
// root when it carries none), with tracer; with a nil tracer it returns ctx and the zero Span.
func Start(ctx context.Context, tracer trace.Tracer, name string, kind trace.SpanKind, issuer string) (context.Context, Span) {
	if tracer == nil {
		return ctx, Span{}
	}
	ctx, span := tracer.Start(ctx, name, trace.WithSpanKind(kind),
		trace.WithAttributes(attribute.String(AttrIssuer, issuer)))
	return ctx, Span{span}
}

// On reports whether s records anything. Build attributes only when it does: the arguments of
// SetAttributes are allocated even when it does nothing.
func (s Span) On() bool { return s.span != nil && s.span.IsRecording() }

// SetAttributes adds attributes to s.
func (s Span) SetAttributes(kv ...attribute.KeyValue) {
	if s.span != nil {
		s.span.SetAttributes(kv...)
	}
}

// End records the answer's HTTP status (0: none came) and err, which sets the span's error
// status with err's message, and ends s. The message must not carry a secret: Portcullis's
// errors name URLs (redacted) and what went wrong, never a token, a secret or a body.
func (s Span) End(status int, err error) {
	if s.span == nil {
		return
	}
	if status != 0 {
		s.span.SetAttributes(attribute.Int(AttrStatusCode, status))
	}
	if err != nil {
		s.span.SetStatus(codes.Error, err.Error())
	}
	s.span.End()
}
