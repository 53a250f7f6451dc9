package jwks

import (
	"net/http"
	"sync"
	"testing"
)

// changes records OnChange calls and whether the cache was ready at each.
type changes struct {
	mu    sync.Mutex
	cache *Cache
	ready []bool
}

func (c *changes) hook(o *Options) { o.OnChange = c.record }

func (c *changes) record() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ready = append(c.ready, c.cache.Ready() && c.cache.Status().Loaded)
}

func (c *changes) want(t *testing.T, when string, n int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ready) != n {
		t.Fatalf("%s: OnChange called %d times, want %d", when, len(c.ready), n)
	}
	for i, r := range c.ready {
		if !r {
			t.Errorf("%s: call %d saw a cache that was not ready yet", when, i+1)
		}
	}
}

func TestOnChange(t *testing.T) {
	t.Run("fetched", func(t *testing.T) {
		idp := newTestIdP(t, setOf(t, "rsa1"))
		rec := &changes{}
		h := newHarness(t, idp, rec.hook)
		rec.cache = h.cache
		h.start()
		rec.want(t, "first fetch", 1)
		h.fire()
		rec.want(t, "unchanged refresh", 1)
		idp.set(func(p *testIdP) { p.status = http.StatusServiceUnavailable })
		h.fire()
		rec.want(t, "failed refresh", 1)
		idp.set(func(p *testIdP) { p.status, p.body = 0, setOf(t, "rsa1", "ec256") })
		h.fire()
		rec.want(t, "rotation", 2)
	})
	t.Run("persisted", func(t *testing.T) {
		dir := t.TempDir()
		idp := newTestIdP(t, setOf(t, "rsa1"))
		startHarness(t, idp, func(o *Options) { o.CacheDir = dir }).stop()
		idp.set(func(p *testIdP) { p.status = http.StatusServiceUnavailable })
		rec := &changes{}
		h := newHarness(t, idp, func(o *Options) { o.CacheDir = dir; rec.hook(o) })
		rec.cache = h.cache
		h.start()
		rec.want(t, "cold start from the persisted set", 1)
		idp.set(func(p *testIdP) { p.status = 0 })
		h.fire()
		rec.want(t, "the same set fetched", 1)
	})
	t.Run("file", func(t *testing.T) {
		rec := &changes{}
		if _, err := New(Options{Issuer: "https://sso.example.com", StaticSet: staticSet(t, setOf(t, "rsa1")), OnChange: rec.record}); err != nil {
			t.Fatal(err)
		}
		rec.want(t, "a static set installed by New", 0)
	})
}
