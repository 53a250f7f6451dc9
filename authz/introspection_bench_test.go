package authz

import (
	"context"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// BenchmarkDecideCachedActive: a cached decision for a Keycloak-like token through one engine,
// on a rule without require.active (kind=jwt: the token cache alone) and on the same rule with
// require.active (kind=introspected: the token cache, then the introspection cache). The
// difference is the cost of a cached introspected decision (BENCHMARKS.md):
//
//	go test -run '^$' -bench DecideCachedActive -count 6 ./authz/ > active.txt
//	benchstat -col /kind active.txt
//
// cpu-ns/op is the process's CPU time (user and system, GC included) per decision.
func BenchmarkDecideCachedActive(b *testing.B) {
	p := newIDPEndpoint(b)
	now := time.Now()
	in := newTestIntrospector(b, p, func() time.Time { return now })
	e, idp := introspectingEngine(b, in, false)
	tok := keycloakLike(b, idp, jwa.RS256)
	for _, c := range []struct{ kind, path string }{{"jwt", "/api/orders/42"}, {"introspected", "/api/payments/42"}} {
		b.Run("kind="+c.kind, func(b *testing.B) {
			req := request(c.path, tok)
			req.Headers["user-agent"], req.Headers["accept"], req.Headers["x-request-id"] = "bench", "*/*", "0b6e1c1a"
			ctx := context.Background()
			if d := e.Decide(ctx, req); !d.Allow {
				b.Fatal(explain(d))
			}
			b.ReportAllocs()
			cpu := processCPU()
			b.ResetTimer()
			for range b.N {
				if d := e.Decide(ctx, req); !d.Allow {
					b.Fatal(explain(d))
				}
			}
			b.StopTimer()
			// CPU time as well as wall time: on a shared machine a descheduled benchmark's wall
			// time says more about the neighbours than about the code.
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
	if n := p.calls.Load(); n != 1 {
		b.Errorf("introspection calls = %d; the benchmark must measure the cache", n)
	}
}
