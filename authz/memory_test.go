package authz

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// TestTokenCacheEntrySize measures the heap one cached Keycloak-shaped token costs (entry,
// identity, rendered headers, LRU bookkeeping): the target is at most 2 KiB.
func TestTokenCacheEntrySize(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a cache with 2,000 tokens")
	}
	const n = 2000
	e, idp := benchEngine(t, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		tok := keycloakLikeSub(t, idp, jwa.RS256, fmt.Sprintf("6f1c2d7e-1b8a-4a55-9a8e-%012d", i))
		if d := e.Decide(context.Background(), benchRequest(tok)); !d.Allow {
			t.Fatalf("denied: %s", d.Detail)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if e.cache.c.EstimatedSize() != n {
		t.Fatalf("cache holds %d entries", e.cache.c.EstimatedSize())
	}
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("token cache: %.0f bytes per entry (the key is the token's SHA-256), %d entries", per, n)
	if per > 2048 {
		t.Errorf("%.0f bytes per cached token, more than 2 KiB", per)
	}
	runtime.KeepAlive(e)
}
