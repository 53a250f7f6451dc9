package authz

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Authorizer is what every front calls: it decides with the current engine (swapped atomically
// on reload), counts and logs the decision, and shows it to its Observer.
type Authorizer struct {
	engine    atomic.Pointer[Engine]
	metrics   *Metrics
	log       *slog.Logger
	observer  Observer
	exemplars ExemplarSource // the observer, when it is one too
}

// Observer watches the decisions of an Authorizer, on every front: the hook for tracing (a span
// per check) and other per-decision instrumentation.
//
// Start is called before each decision with the front's context, the front (FrontGRPC,
// FrontHTTP) and the request. On the gRPC front the context carries what gRPC built: the
// incoming metadata (grpc/metadata.FromIncomingContext), and the span or values a stats handler
// or interceptor put there. On both fronts r.Headers carries the original request's headers,
// trace context (traceparent, b3) included, as Envoy or the proxy forwarded them. The decision
// is made, and logged, with the context Start returns; done, unless nil, is called with the
// decision before the front answers. Neither Start nor done may change r or d (a decision may
// share its header lists with the token cache), and both run on the request's goroutine, for
// every request at once: they must be safe for concurrent use.
type Observer interface {
	Start(ctx context.Context, front string, r *Request) (context.Context, func(d *Decision))
}

// ExemplarSource is an Observer that also labels the check-duration observation of a decision
// with an exemplar (the trace ID of a sampled check): Exemplar is called with the context Start
// returned and answers the exemplar's labels, or nil for none.
type ExemplarSource interface {
	Exemplar(ctx context.Context) prometheus.Labels
}

// AuthorizerOption sets an optional part of an Authorizer.
type AuthorizerOption func(*Authorizer)

// WithObserver has o watch every decision. Without it, no observer is called and the cost is
// nil.
func WithObserver(o Observer) AuthorizerOption {
	return func(a *Authorizer) {
		a.observer = o
		a.exemplars, _ = o.(ExemplarSource)
	}
}

// NewAuthorizer returns an Authorizer serving with e; m and log may be nil.
func NewAuthorizer(e *Engine, m *Metrics, log *slog.Logger, opts ...AuthorizerOption) *Authorizer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Authorizer{metrics: m, log: log}
	for _, o := range opts {
		o(a)
	}
	a.engine.Store(e)
	return a
}

// Swap installs a new engine; checks already running finish with the old one.
func (a *Authorizer) Swap(e *Engine) { a.engine.Store(e) }

// Engine returns the engine currently serving.
func (a *Authorizer) Engine() *Engine { return a.engine.Load() }

// Authorize decides one request for a front with the engine serving, and records the
// decision.
func (a *Authorizer) Authorize(ctx context.Context, front string, r *Request) *Decision {
	e := a.engine.Load()
	var done func(*Decision)
	if a.observer != nil {
		ctx, done = a.observer.Start(ctx, front, r)
	}
	start := time.Now()
	d := e.Decide(ctx, r)
	elapsed := time.Since(start)
	if a.metrics != nil {
		var exemplar prometheus.Labels
		if a.exemplars != nil {
			exemplar = a.exemplars.Exemplar(ctx)
		}
		a.metrics.observe(front, d, elapsed.Seconds(), exemplar)
	}
	a.logDecision(ctx, front, r, d, elapsed)
	if done != nil {
		done(d)
	}
	return d
}

// logDecision writes one structured line per deny (and per dry-run deny), and per allow at
// debug level. Never the token: only the path without its query, and the identity's subject.
func (a *Authorizer) logDecision(ctx context.Context, front string, r *Request, d *Decision, elapsed time.Duration) {
	level := slog.LevelDebug
	msg := "allow"
	switch {
	case !d.Allow:
		level, msg = slog.LevelInfo, "deny"
	case d.DryRun != nil && !d.DryRun.Allow:
		level, msg = slog.LevelInfo, "dry-run deny (allowed)"
	}
	if len(d.Evaluated().ConditionErrors) > 0 {
		level = slog.LevelWarn
	}
	if !a.log.Enabled(ctx, level) {
		return
	}
	path, _, _ := strings.Cut(r.Path, "?")
	attrs := []slog.Attr{
		slog.String("front", front),
		slog.Int("status", d.Status),
		slog.String("reason", string(d.Reason)),
		slog.String("rule", d.Rule),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", path),
		slog.Duration("latency", elapsed),
	}
	if d.Identity != nil {
		attrs = append(attrs, slog.String("sub", d.Identity.Subject), slog.String("issuer", d.Identity.Issuer))
		if d.Identity.Tenant != "" {
			attrs = append(attrs, slog.String("tenant", d.Identity.Tenant))
		}
	}
	if in := d.Introspection; in != nil {
		attrs = append(attrs, slog.Bool("introspection_cached", in.Cached))
	}
	if detail := d.Evaluated().Detail; detail != "" {
		attrs = append(attrs, slog.String("detail", detail))
	}
	if errs := d.Evaluated().ConditionErrors; len(errs) > 0 {
		attrs = append(attrs, slog.Any("condition_errors", errs))
	}
	a.log.LogAttrs(ctx, level, msg, attrs...)
}
