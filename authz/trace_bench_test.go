package authz_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/sdk/trace"

	"github.com/portcullis-authz/portcullis/authz"
	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/tracing"
)

// discard is an exporter that drops what the batch span processor hands it: the cost of
// tracing on Portcullis's side, without the network.
type discard struct{}

func (discard) ExportSpans(context.Context, []trace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                          { return nil }

// BenchmarkAuthorizeCachedTraced: BenchmarkAuthorizeCached with tracing on at sample_ratio 1
// (every check recorded, its exemplar observed), the request carrying a sampled W3C
// traceparent; spans go through the batch span processor to an exporter that drops them.
func BenchmarkAuthorizeCachedTraced(b *testing.B) {
	one := 1.0
	p, err := tracing.New(context.Background(), &config.Tracing{SampleRatio: &one},
		tracing.Options{Exporter: discard{}, Batch: true, Getenv: func(string) string { return "" }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	e, req := authz.BenchAuthorizerInput(b)
	req.Headers["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	a := authz.NewAuthorizer(e, authz.NewMetrics(prometheus.NewRegistry()), nil, authz.WithObserver(p))
	ctx := context.Background()
	if d := a.Authorize(ctx, authz.FrontGRPC, req); !d.Allow {
		b.Fatalf("denied: %s %s", d.Reason, d.Detail)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if d := a.Authorize(ctx, authz.FrontGRPC, req); !d.Allow {
			b.Fatal("denied")
		}
	}
}
