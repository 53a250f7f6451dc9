package authz

import (
	"context"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/portcullis-authz/portcullis/dpop"
)

// BenchmarkDecideCachedDPoP: BenchmarkDecideCached's request with a DPoP-bound token (cached
// after the first request) and a fresh ES256 proof on every request, verified in full (the
// proof cost on top of a cached decision). Proofs are signed in batches outside the timer.
func BenchmarkDecideCachedDPoP(b *testing.B) {
	e, idp := benchEngine(b, 10000)
	now := time.Now()
	e.sender = newSender(SenderOptions{Replay: dpop.NewReplayCache(1 << 22)}, func() time.Time { return now })
	key := newProofKey(b)
	tok := keycloakLikeClaims(b, idp, jwa.RS256, map[string]any{"cnf": map[string]any{"jkt": key.jkt}})
	req := benchRequest(tok)
	req.Scheme = "https"
	req.Headers["authorization"] = "DPoP " + tok
	const uri = "https://api.example.com/api/orders/42"
	var pool []string
	next := func() string {
		if len(pool) == 0 {
			b.StopTimer()
			for range 512 {
				pool = append(pool, key.proof(b, "GET", uri, tok, now))
			}
			b.StartTimer()
		}
		p := pool[len(pool)-1]
		pool = pool[:len(pool)-1]
		return p
	}
	ctx := context.Background()
	req.Headers["dpop"] = next()
	if d := e.Decide(ctx, req); !d.Allow {
		b.Fatalf("denied: %s %s", d.Reason, d.Detail)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req.Headers["dpop"] = next()
		if d := e.Decide(ctx, req); !d.Allow {
			b.Fatalf("denied: %s %s", d.Reason, d.Detail)
		}
	}
}
