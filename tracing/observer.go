package tracing

import (
	"context"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/portcullis-authz/portcullis/authz"
)

// Span attributes of a check. Never the token; of the claims, only the subject and those
// tracing.claims lists.
const (
	AttrDecision   = "portcullis.decision" // allow, deny
	AttrReason     = "portcullis.reason"   // the reason code (docs/decisions.md)
	AttrRule       = "portcullis.rule"     // the matched rule; absent when none matched
	AttrIssuer     = "portcullis.issuer"   // the verified token's iss
	AttrSubject    = "portcullis.sub"      // the verified token's sub
	AttrCached     = "portcullis.cached"   // the identity came from the verified-token cache
	AttrDryRun     = "portcullis.dry_run"  // the rule is in dry-run mode
	AttrClaim      = "portcullis.claim."   // prefix of each tracing.claims claim
	AttrStatusCode = "http.response.status_code"
	AttrMethod     = "http.request.method"
	AttrPath       = "url.path" // without the query, which may carry a token
	AttrHost       = "server.address"

	// AttrIntrospectionCached says, for a check that introspected the token, whether the answer
	// came from the introspection cache (true: no call, so no introspect.call span).
	AttrIntrospectionCached = "portcullis.introspection.cached"
)

// SpanName is the name of a check's span on a front (authz.FrontGRPC, authz.FrontHTTP).
func SpanName(front string) string { return "portcullis.check." + front }

var _ authz.Observer = (*Provider)(nil)
var _ authz.ExemplarSource = (*Provider)(nil)

// Start starts the span of one check (authz.Observer), the child of the span its request
// carries: from the gRPC metadata of the ext_authz call (Envoy's own span for the call, when
// Envoy traces), else from the original request's headers (the span of whoever sent it; on the
// HTTP front, these are the headers of the auth request itself). W3C traceparent/tracestate
// and B3, single (b3) or multi-header (x-b3-*), are read; with no parent, the check starts a
// trace, recorded as sample_ratio says.
func (p *Provider) Start(ctx context.Context, front string, r *authz.Request) (context.Context, func(*authz.Decision)) {
	ctx = p.parent(ctx, r)
	ctx, span := p.tracer.Start(ctx, SpanName(front), trace.WithSpanKind(trace.SpanKindServer))
	if !span.IsRecording() {
		// Not sampled: the context still carries the trace and span IDs (for the log line and
		// the key-set fetches), and nothing is recorded.
		return ctx, nil
	}
	path, _, _ := strings.Cut(r.Path, "?")
	span.SetAttributes(
		attribute.String("portcullis.front", front),
		attribute.String(AttrMethod, r.Method),
		attribute.String(AttrHost, r.Host),
		attribute.String(AttrPath, path),
	)
	return ctx, func(d *authz.Decision) { p.end(span, d) }
}

// parent is ctx with the remote span context of the check's request, if it carries one.
func (p *Provider) parent(ctx context.Context, r *authz.Request) context.Context {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if c := p.prop.Extract(ctx, metadataCarrier(md)); trace.SpanContextFromContext(c).IsValid() {
			return c
		}
	}
	return p.prop.Extract(ctx, headerCarrier(r.Headers))
}

// end records the decision on the span and ends it.
func (p *Provider) end(span trace.Span, d *authz.Decision) {
	decision := "deny"
	if d.Allow {
		decision = "allow"
	}
	attrs := make([]attribute.KeyValue, 0, 9+len(p.claims))
	attrs = append(attrs,
		attribute.String(AttrDecision, decision),
		attribute.String(AttrReason, string(d.Reason)),
		attribute.Int(AttrStatusCode, d.Status),
		attribute.Bool(AttrCached, d.Cached || d.Evaluated().Cached),
	)
	if d.Rule != "" {
		attrs = append(attrs, attribute.String(AttrRule, d.Rule))
	}
	if d.DryRun != nil {
		attrs = append(attrs, attribute.Bool(AttrDryRun, true))
	}
	if in := d.Evaluated().Introspection; in != nil {
		attrs = append(attrs, attribute.Bool(AttrIntrospectionCached, in.Cached))
	}
	if id := d.Evaluated().Identity; id != nil {
		attrs = append(attrs, attribute.String(AttrIssuer, id.Issuer), attribute.String(AttrSubject, id.Subject))
		for _, name := range p.claims {
			if v, ok := claimString(id.Claims[name]); ok {
				attrs = append(attrs, attribute.String(AttrClaim+name, v))
			}
		}
	}
	span.SetAttributes(attrs...)
	if d.Status >= 500 {
		// A deny is an answer, not a failure; the keys missing (503) is one.
		span.SetStatus(codes.Error, string(d.Reason))
	}
	span.End()
}

// Exemplar labels the duration of a sampled check with its trace ID (authz.ExemplarSource).
func (p *Provider) Exemplar(ctx context.Context) prometheus.Labels {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsSampled() {
		return nil
	}
	return prometheus.Labels{"trace_id": sc.TraceID().String()}
}

// headerCarrier reads the original request's headers (lower-case names, as authz.Request
// has them) for the propagators.
type headerCarrier map[string]string

func (h headerCarrier) Get(key string) string { return h[strings.ToLower(key)] }
func (h headerCarrier) Set(key, value string) { h[strings.ToLower(key)] = value }
func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// metadataCarrier reads gRPC metadata for the propagators.
type metadataCarrier metadata.MD

func (m metadataCarrier) Get(key string) string {
	if v := metadata.MD(m).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
func (m metadataCarrier) Set(key, value string) { metadata.MD(m).Set(key, value) }
func (m metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// LogHandler adds trace_id and span_id to every record logged with the context of a check
// (the decision lines of authz.Authorizer), so that a deny is found from its trace and back.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (l logHandler) Handle(ctx context.Context, rec slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		rec = rec.Clone()
		rec.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		if !sc.IsSampled() {
			rec.AddAttrs(slog.Bool("trace_sampled", false))
		}
	}
	return l.Handler.Handle(ctx, rec)
}

func (l logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{l.Handler.WithAttrs(attrs)}
}

func (l logHandler) WithGroup(name string) slog.Handler { return logHandler{l.Handler.WithGroup(name)} }
