package jwks

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/prometheus/client_golang/prometheus"
)

// wantMetrics compares every jwks series of reg with want, one `name{labels} value` line per
// series, labels sorted by name; ISSUER stands for the issuer label value.
func wantMetrics(t *testing.T, reg prometheus.Gatherer, issuer, want string) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "portcullis_jwks_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			got = append(got, fmt.Sprintf("%s{%s} %s", f.GetName(), strings.Join(labels, ","), strconv.FormatFloat(value(m), 'f', -1, 64)))
		}
	}
	sort.Strings(got)
	wantLines := strings.Split(strings.TrimSpace(strings.ReplaceAll(want, "ISSUER", issuer)), "\n")
	sort.Strings(wantLines)
	if g, w := strings.Join(got, "\n"), strings.Join(wantLines, "\n"); g != w {
		t.Errorf("metrics:\n%s\nwant:\n%s", g, w)
	}
}

// refreshSeries renders the refresh counters, those of the admin trigger at 0.
func refreshSeries(okStart, okInterval, okKID, errStart, errInterval, errKID int) string {
	return fmt.Sprintf(`portcullis_jwks_refreshes_total{issuer="ISSUER",result="error",trigger="admin"} 0
portcullis_jwks_refreshes_total{issuer="ISSUER",result="success",trigger="admin"} 0
portcullis_jwks_refreshes_total{issuer="ISSUER",result="error",trigger="interval"} %d
portcullis_jwks_refreshes_total{issuer="ISSUER",result="error",trigger="start"} %d
portcullis_jwks_refreshes_total{issuer="ISSUER",result="error",trigger="unknown_kid"} %d
portcullis_jwks_refreshes_total{issuer="ISSUER",result="success",trigger="interval"} %d
portcullis_jwks_refreshes_total{issuer="ISSUER",result="success",trigger="start"} %d
portcullis_jwks_refreshes_total{issuer="ISSUER",result="success",trigger="unknown_kid"} %d
`, errInterval, errStart, errKID, okInterval, okStart, okKID)
}

func lookupSeries(hit, miss int) string {
	return fmt.Sprintf(`portcullis_jwks_lookups_total{issuer="ISSUER",result="hit"} %d
portcullis_jwks_lookups_total{issuer="ISSUER",result="miss"} %d
`, hit, miss)
}

func keysSeries(n int) string {
	return fmt.Sprintf("portcullis_jwks_keys{issuer=\"ISSUER\"} %d\n", n)
}

func lastSuccessSeries(at time.Time) string {
	return fmt.Sprintf("portcullis_jwks_last_success_timestamp_seconds{issuer=\"ISSUER\"} %d\n", at.Unix())
}

func TestStartDiscoversAndServes(t *testing.T) {
	idp := newTestIdP(t, setOf(t, "rsa1", "ec256"))
	h := startHarness(t, idp, nil)
	started := h.clock.Now()

	idp.wantCounts(t, 1, 1)
	if !h.cache.Ready() {
		t.Fatal("not ready after a successful start")
	}
	st := h.cache.Status()
	want := Status{Issuer: idp.URL(), Loaded: true, Source: SourceFetched, Keys: 2, JWKSURI: idp.URL() + "/jwks",
		LastSuccess: started, LastAttempt: started, NextRefresh: started.Add(15 * time.Minute)}
	if st != want {
		t.Errorf("Status = %+v\nwant %+v", st, want)
	}

	k := h.mustFind("rsa1", jwa.RS256)
	if _, ok := k.Public.(*rsa.PublicKey); !ok || k.JWK == nil || !h.cache.Contains(k.Thumbprint) {
		t.Errorf("key %+v: Public %T, in set %v", k, k.Public, h.cache.Contains(k.Thumbprint))
	}
	h.mustFind("ec256", jwa.ES256)
	if _, err := h.lookup("rsa1", jwa.ES256); !errors.Is(err, ErrUnknownKey) || err.Error() != `jwks: unknown key: kid "rsa1" does not fit ES256` {
		t.Errorf("rsa1 for ES256: %v", err)
	}
	if got, err := h.lookup("", jwa.RS256); err != nil || len(got) != 1 || got[0].KID != "rsa1" {
		t.Errorf(`Lookup("", RS256) = %v, %v`, kidsOf(got), err)
	}
	if _, err := h.lookup("", jwa.EdDSA); !errors.Is(err, ErrUnknownKey) {
		t.Errorf(`Lookup("", EdDSA): %v`, err)
	}
	if h.cache.Contains("no-such-thumbprint") {
		t.Error("Contains(unknown) = true")
	}
	idp.wantCounts(t, 1, 1) // none of these fetched

	if got := idp.request("/jwks"); got.Get("Accept") != "application/jwk-set+json, application/json" || got.Get("User-Agent") != "portcullis" {
		t.Errorf("JWKS request headers: %v", got)
	}
	if got := idp.request(discoveryPath); got.Get("Accept") != "application/json" || got.Get("User-Agent") != "portcullis" {
		t.Errorf("discovery request headers: %v", got)
	}
	wantMetrics(t, h.reg, idp.URL(), lookupSeries(3, 2)+refreshSeries(1, 0, 0, 0, 0, 0)+
		keysSeries(2)+lastSuccessSeries(started))
}

func TestDiscovery(t *testing.T) {
	t.Run("issuer mismatch", func(t *testing.T) {
		idp := newTestIdP(t, setOf(t, "rsa1"))
		idp.set(func(p *testIdP) { p.issuer = p.srv.URL + "/" })
		h := startHarness(t, idp, nil)
		want := fmt.Sprintf(`jwks: discovery: %[1]s/.well-known/openid-configuration names issuer "%[1]s/" but the configured issuer is "%[1]s"; `+
			`they must be identical (scheme, host, port, path, trailing slash): configure the issuer exactly as the identity provider names itself, which is also the iss of its tokens`, idp.URL())
		if st := h.cache.Status(); st.Loaded || st.LastError != want {
			t.Errorf("Status = %+v\nwant error %s", st, want)
		}
		idp.wantCounts(t, 1, 0)
		if got := h.refreshes("error", "start"); got != 1 {
			t.Errorf("start errors = %v", got)
		}
	})
	t.Run("issuer with trailing slash", func(t *testing.T) {
		idp := newTestIdP(t, setOf(t, "rsa1"))
		idp.set(func(p *testIdP) { p.issuer = p.srv.URL + "/" })
		h := startHarness(t, idp, func(o *Options) { o.Issuer = idp.URL() + "/" })
		if !h.cache.Ready() {
			t.Fatalf("not ready: %s", h.cache.Status().LastError)
		}
		idp.wantCounts(t, 1, 1) // one slash before .well-known, or the test IdP would 404
	})
	t.Run("no jwks_uri", func(t *testing.T) {
		idp := newTestIdP(t, setOf(t, "rsa1"))
		idp.set(func(p *testIdP) { p.jwksURI = " " })
		h := startHarness(t, idp, nil)
		contains(t, "LastError", h.cache.Status().LastError, `jwks_uri " " is not an absolute http(s) URL`)
	})
	t.Run("discovery 404", func(t *testing.T) {
		idp := newTestIdP(t, setOf(t, "rsa1"))
		h := startHarness(t, idp, func(o *Options) { o.Issuer = idp.URL() + "/realms/missing" })
		if got, want := h.cache.Status().LastError, "jwks: discovery: GET "+idp.URL()+"/realms/missing/.well-known/openid-configuration: HTTP 404"; got != want {
			t.Errorf("LastError = %q, want %q", got, want)
		}
	})
	t.Run("explicit jwks_uri skips discovery", func(t *testing.T) {
		idp := newTestIdP(t, setOf(t, "rsa1"))
		h := startHarness(t, idp, func(o *Options) { o.JWKSURI = idp.URL() + "/jwks" })
		idp.wantCounts(t, 0, 1)
		h.mustFind("rsa1", jwa.RS256)
	})
	t.Run("rediscovers after a failed fetch", func(t *testing.T) {
		idp := newTestIdP(t, setOf(t, "rsa1"))
		h := startHarness(t, idp, nil)
		idp.set(func(p *testIdP) { p.status = http.StatusNotFound })
		h.fire()
		idp.set(func(p *testIdP) { p.status = 0 })
		h.fire()
		idp.wantCounts(t, 2, 3)
		if st := h.cache.Status(); st.LastError != "" || st.Stale {
			t.Errorf("Status = %+v", st)
		}
	})
}

// An https issuer must not be downgraded to plain http by its discovery document.
func TestHTTPSIssuerRefusesPlainHTTPKeys(t *testing.T) {
	idp, client := newTLSTestIdP(t, setOf(t, "rsa1"))
	h := startHarness(t, idp, func(o *Options) { o.HTTPClient = client })
	if !h.cache.Ready() {
		t.Fatalf("TLS IdP: %s", h.cache.Status().LastError)
	}
	idp.set(func(p *testIdP) { p.jwksURI = "http://keys.example.com/jwks" })
	h2 := startHarness(t, idp, func(o *Options) { o.HTTPClient = client })
	contains(t, "LastError", h2.cache.Status().LastError,
		`jwks_uri "http://keys.example.com/jwks" is plain http on a host other than loopback`)
}

func TestUnknownKIDRefresh(t *testing.T) {
	idp := newTestIdP(t, setOf(t, "rsa1"))
	h := startHarness(t, idp, nil)
	idp.serveKeys(setOf(t, "rsa1", "rsa2")) // rotation: a new key appears

	// Within MinRefreshInterval of the start fetch: refused without a request.
	h.clock.Advance(9 * time.Second)
	if _, err := h.lookup("rsa2", jwa.RS256); !errors.Is(err, ErrUnknownKey) || err.Error() != `jwks: unknown key: kid "rsa2"` {
		t.Fatalf("within the floor: %v", err)
	}
	idp.wantCounts(t, 1, 1)

	// Once the floor has passed, a single Lookup refreshes and finds it.
	h.clock.Advance(time.Second)
	h.mustFind("rsa2", jwa.RS256)
	idp.wantCounts(t, 1, 2)
	if got := h.nextIn(); got != 15*time.Minute {
		t.Errorf("next refresh in %s, want 15m after the unknown-kid fetch", got)
	}
	h.mustFind("rsa2", jwa.RS256)
	wantMetrics(t, h.reg, idp.URL(), lookupSeries(1, 2)+refreshSeries(1, 0, 1, 0, 0, 0)+
		keysSeries(2)+lastSuccessSeries(h.clock.Now()))
}

func TestConcurrentUnknownKIDShareOneFetch(t *testing.T) {
	idp := newTestIdP(t, setOf(t, "rsa1"))
	h := startHarness(t, idp, nil)
	idp.serveKeys(setOf(t, "rsa1", "rsa2"))
	idp.drainArrivals()
	idp.stallJWKS() // hold the fetch until every caller has asked
	h.clock.Advance(10 * time.Second)

	const callers = 1000
	var started, done sync.WaitGroup
	errs := make(chan error, callers)
	started.Add(callers)
	done.Add(callers)
	for range callers {
		go func() {
			defer done.Done()
			started.Done()
			got, err := h.lookup("rsa2", jwa.RS256)
			if err == nil && (len(got) != 1 || got[0].KID != "rsa2") {
				err = fmt.Errorf("got %v", kidsOf(got))
			}
			errs <- err
		}()
	}
	started.Wait()
	idp.waitArrival(t)
	idp.unstall()
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	idp.wantCounts(t, 1, 2)
	if hit, miss := h.lookups("hit"), h.lookups("miss"); hit+miss != callers || miss < 1 {
		t.Errorf("lookups hit %v + miss %v, want %d with at least one miss", hit, miss, callers)
	}
	if got := h.refreshes("success", "unknown_kid"); got != 1 {
		t.Errorf("unknown_kid refreshes = %v, want 1", got)
	}
}

func TestRandomKIDsCannotStormTheIdP(t *testing.T) {
	idp := newTestIdP(t, setOf(t, "rsa1"))
	h := startHarness(t, idp, nil)
	burst := func() {
		t.Helper()
		const workers, each = 20, 500 // 10,000 lookups
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					if _, err := h.lookup(rand.Text(), jwa.RS256); !errors.Is(err, ErrUnknownKey) {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("random kid: %v", err)
		}
	}

	burst() // right after the start fetch: no request at all
	idp.wantCounts(t, 1, 1)
	h.clock.Advance(time.Second)
	for round := int64(1); round <= 3; round++ {
		h.clock.Advance(9 * time.Second) // 10s since the last fetch: one is allowed
		burst()
		idp.wantCounts(t, 1, 1+round)
		h.clock.Advance(9 * time.Second) // 9s since: none
		burst()
		idp.wantCounts(t, 1, 1+round)
		h.clock.Advance(time.Second)
	}
	if got := h.lookups("miss"); got != 70000 {
		t.Errorf("misses = %v, want 70000", got)
	}
	if got := h.refreshes("success", "unknown_kid"); got != 3 {
		t.Errorf("unknown_kid refreshes = %v, want 3", got)
	}
}

func TestRefreshFailureKeepsTheLastGoodSet(t *testing.T) {
	good := setOf(t, "rsa1", "ec256")
	tests := []struct {
		name    string
		client  time.Duration // HTTP client timeout; 0 = 5s
		breakIt func(p *testIdP)
		wantErr string
	}{
		{"HTTP 503", 0, func(p *testIdP) { p.status = http.StatusServiceUnavailable }, "/jwks: HTTP 503"},
		{"HTML", 0, func(p *testIdP) { p.body = []byte("<html>maintenance</html>") }, "not a JWK Set: invalid character '<'"},
		{"malformed JSON", 0, func(p *testIdP) { p.body = []byte(`{"keys":[{"kty":"RSA"`) }, "not a JWK Set: unexpected end of JSON input"},
		{"empty set", 0, func(p *testIdP) { p.body = []byte(`{"keys":[]}`) }, "no usable keys: the key set is empty"},
		{"no usable key", 0, func(p *testIdP) {
			p.body = setJSON(t, jwkJSON(t, keys(t)["rsa1"].public, map[string]any{"use": "enc", "alg": nil}))
		}, `no usable keys among 1 published`},
		{"over the size limit", 0, func(p *testIdP) {
			p.body = append(setOf(t, "rsa1"), make([]byte, 8192)...)
		}, "/jwks: response larger than 4096 bytes"},
		{"stalled", 200 * time.Millisecond, func(p *testIdP) {
			p.stall, p.release = true, make(chan struct{})
		}, "Client.Timeout exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idp := newTestIdP(t, good)
			h := startHarness(t, idp, func(o *Options) {
				o.MaxResponseBytes = 4096
				if tc.client > 0 {
					o.HTTPClient = NewClient(ClientOptions{Timeout: tc.client})
				}
			})
			started := h.clock.Now()
			rsa1 := h.mustFind("rsa1", jwa.RS256)

			idp.set(tc.breakIt)
			h.fire() // the 15m refresh fails
			st := h.cache.Status()
			if !st.Loaded || !st.Stale || st.Keys != 2 || st.ConsecutiveFailures != 1 || !st.LastSuccess.Equal(started) {
				t.Errorf("Status = %+v", st)
			}
			contains(t, "LastError", st.LastError, tc.wantErr)
			h.mustFind("rsa1", jwa.RS256)
			h.mustFind("ec256", jwa.ES256)
			if !h.cache.Contains(rsa1.Thumbprint) {
				t.Error("rsa1 no longer in the set")
			}
			if got := h.nextIn(); got != 10*time.Second {
				t.Errorf("retry in %s, want 10s", got)
			}
			wantMetrics(t, h.reg, idp.URL(), lookupSeries(3, 0)+refreshSeries(1, 0, 0, 0, 1, 0)+
				keysSeries(2)+lastSuccessSeries(started))

			// The provider recovers: the next retry clears the staleness.
			idp.unstall()
			idp.set(func(p *testIdP) { p.status, p.body = 0, good })
			h.fire()
			if st := h.cache.Status(); st.Stale || st.LastError != "" || st.ConsecutiveFailures != 0 || st.Keys != 2 {
				t.Errorf("after recovery: %+v", st)
			}
			if got := h.refreshes("success", "interval"); got != 1 {
				t.Errorf("interval successes = %v", got)
			}
		})
	}
}

func TestIdPDownAfterStart(t *testing.T) {
	idp := newTestIdP(t, setOf(t, "rsa1"))
	h := startHarness(t, idp, nil)
	started := h.clock.Now()
	idp.srv.Close() // connection refused from now on

	// An unknown kid still refreshes once the floor has passed, and the refresh fails.
	h.clock.Advance(10 * time.Second)
	_, err := h.lookup("rsa2", jwa.RS256)
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown kid while down: %v", err)
	}
	contains(t, "error", err.Error(), `jwks: unknown key: kid "rsa2" (refresh failed: jwks: Get "`+idp.URL()+`/jwks": `, "connection refused")
	h.mustFind("rsa1", jwa.RS256)

	// The background retry fails too (after rediscovery); the known key keeps working.
	h.fire()
	h.mustFind("rsa1", jwa.RS256)
	st := h.cache.Status()
	if !st.Stale || st.ConsecutiveFailures != 2 {
		t.Errorf("Status = %+v", st)
	}
	contains(t, "LastError", st.LastError, "jwks: discovery: Get", "connection refused")
	wantMetrics(t, h.reg, idp.URL(), lookupSeries(2, 1)+refreshSeries(1, 0, 0, 0, 1, 1)+
		keysSeries(1)+lastSuccessSeries(started))
}

func TestNeverLoaded(t *testing.T) {
	idp := newTestIdP(t, setOf(t, "rsa1"))
	idp.set(func(p *testIdP) { p.status = http.StatusBadGateway })
	h := startHarness(t, idp, func(o *Options) { o.CacheDir = t.TempDir() }) // nothing persisted yet

	if h.cache.Ready() {
		t.Fatal("ready without keys")
	}
	if _, err := h.lookup("rsa1", jwa.RS256); err != ErrNotLoaded {
		t.Fatalf("Lookup: %v, want ErrNotLoaded", err)
	}
	if _, err := h.lookup("", jwa.RS256); err != ErrNotLoaded {
		t.Fatalf("Lookup without kid: %v, want ErrNotLoaded", err)
	}
	st := h.cache.Status()
	if st.Loaded || st.Stale || st.Source != SourceNone || st.Keys != 0 {
		t.Errorf("Status = %+v", st)
	}
	contains(t, "LastError", st.LastError, "/jwks: HTTP 502")

	// While no key set was ever loaded, retries come every 10 s (the floor, doubling, capped
	// at 10 s), without end: a provider that comes up is used within seconds.
	for i, want := range []time.Duration{10 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second} {
		if got := h.nextIn(); got != want {
			t.Fatalf("wait before retry %d = %s, want %s", i+1, got, want)
		}
		h.fire()
	}
	idp.wantCounts(t, 7, 7)
	wantMetrics(t, h.reg, idp.URL(), lookupSeries(0, 2)+refreshSeries(0, 0, 0, 7, 0, 0))

	idp.set(func(p *testIdP) { p.status = 0 })
	h.fire()
	if !h.cache.Ready() {
		t.Fatal("not ready after the provider recovered")
	}
	h.mustFind("rsa1", jwa.RS256)
	if got := h.refreshes("success", "start"); got != 1 {
		t.Errorf("start successes = %v", got)
	}
	if got := h.nextIn(); got != 15*time.Minute {
		t.Errorf("next refresh in %s", got)
	}
}

// TestRetryBackoffBeforeAndAfterFirstLoad: before the first key set, failed fetches are
// retried from the floor, doubling, up to 10 s; once a set was loaded, up to a minute.
func TestRetryBackoffBeforeAndAfterFirstLoad(t *testing.T) {
	idp := newTestIdP(t, setOf(t, "rsa1"))
	idp.set(func(p *testIdP) { p.status = http.StatusServiceUnavailable }) // still starting
	h := startHarness(t, idp, func(o *Options) { o.MinRefreshInterval = time.Second })
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		if got := h.nextIn(); got != want {
			t.Fatalf("never loaded: wait before retry %d = %s, want %s", i+1, got, want)
		}
		h.fire()
	}
	if h.cache.Ready() {
		t.Fatal("ready while the provider fails")
	}
	idp.set(func(p *testIdP) { p.status = 0 }) // up: the retry 10 s later loads the keys
	if got := h.nextIn(); got != 10*time.Second {
		t.Fatalf("wait before the retry that succeeds = %s, want 10s", got)
	}
	h.fire()
	if !h.cache.Ready() {
		t.Fatal("not ready after the provider came up")
	}
	if got := h.nextIn(); got != 15*time.Minute {
		t.Fatalf("next refresh in %s, want 15m", got)
	}
	idp.set(func(p *testIdP) { p.status = http.StatusServiceUnavailable })
	h.fire() // the 15m refresh fails; the loaded set keeps serving
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute} {
		if got := h.nextIn(); got != want {
			t.Fatalf("after a load: wait before retry %d = %s, want %s", i+1, got, want)
		}
		h.fire()
	}
	h.mustFind("rsa1", jwa.RS256)
}

func TestColdStartFromPersistedSet(t *testing.T) {
	dir := t.TempDir()
	idp := newTestIdP(t, setOf(t, "rsa1", "ec256"))
	first := startHarness(t, idp, func(o *Options) { o.CacheDir = dir })
	fetchedAt := first.clock.Now()
	first.stop()

	path := persistPath(dir, idp.URL())
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("nothing persisted: %v", err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("persisted file mode %v, want 0600", info.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("cache dir holds %d entries, want only the key set", len(entries))
	}

	idp.set(func(p *testIdP) { p.status = http.StatusServiceUnavailable })
	h := newHarness(t, idp, func(o *Options) { o.CacheDir = dir })
	h.clock.Advance(time.Hour)
	h.start()
	if !h.cache.Ready() {
		t.Fatal("not ready from the persisted set")
	}
	st := h.cache.Status()
	if !st.Stale || st.Source != SourcePersisted || st.Keys != 2 || !st.LastSuccess.IsZero() || st.JWKSURI != idp.URL()+"/jwks" {
		t.Errorf("Status = %+v", st)
	}
	k := h.mustFind("rsa1", jwa.RS256)
	if !h.cache.Contains(k.Thumbprint) {
		t.Error("persisted key not in the set")
	}
	h.mustFind("ec256", jwa.ES256)
	contains(t, "logs", h.logs.String(), "serving the persisted key set", "fetched_at="+fetchedAt.Format("2006-01-02T15:04:05"), "age=1h0m0s")
	wantMetrics(t, h.reg, idp.URL(), lookupSeries(2, 0)+refreshSeries(0, 0, 0, 1, 0, 0)+
		keysSeries(2))

	idp.set(func(p *testIdP) { p.status = 0 })
	h.fire()
	if st := h.cache.Status(); st.Stale || st.Source != SourceFetched {
		t.Errorf("after recovery: %+v", st)
	}
	if got := h.refreshes("success", "start"); got != 1 {
		t.Errorf("start successes = %v", got)
	}
}

func TestKeyRotatedOut(t *testing.T) {
	idp := newTestIdP(t, setOf(t, "rsa1", "rsa2"))
	h := startHarness(t, idp, nil)
	old := h.mustFind("rsa1", jwa.RS256)
	if !h.cache.Contains(old.Thumbprint) {
		t.Fatal("rsa1 not in the set")
	}
	idp.serveKeys(setOf(t, "rsa2", "rsa3"))
	h.fire()
	if h.cache.Contains(old.Thumbprint) {
		t.Error("Contains(rotated-out key) = true")
	}
	if _, err := h.lookup("rsa1", jwa.RS256); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Lookup(rotated-out kid) = %v", err)
	}
	h.mustFind("rsa3", jwa.RS256)
	if got := h.metric("portcullis_jwks_keys", "issuer", idp.URL()); got != 2 {
		t.Errorf("keys gauge = %v", got)
	}
	contains(t, "logs", h.logs.String(), `msg="jwks: key set changed" added=[rsa3] removed=[rsa1]`)
}

func TestCacheControl(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"none", nil, 15 * time.Minute},
		{"Keycloak no-cache", http.Header{"Cache-Control": {"no-cache"}}, 15 * time.Minute},
		{"no-store", http.Header{"Cache-Control": {"no-store"}}, 15 * time.Minute},
		{"max-age shortens", http.Header{"Cache-Control": {"max-age=60"}}, time.Minute},
		{"max-age among directives", http.Header{"Cache-Control": {"public, max-age=300, must-revalidate"}}, 5 * time.Minute},
		{"max-age clamped to the floor", http.Header{"Cache-Control": {"max-age=1"}}, 10 * time.Second},
		{"max-age=0 is no guidance", http.Header{"Cache-Control": {"max-age=0"}}, 15 * time.Minute},
		{"longer max-age does not lengthen", http.Header{"Cache-Control": {"max-age=86400"}}, 15 * time.Minute},
		{"no-cache wins over max-age", http.Header{"Cache-Control": {"max-age=60, no-cache"}}, 15 * time.Minute},
		{"Age counts", http.Header{"Cache-Control": {"max-age=600"}, "Age": {"480"}}, 2 * time.Minute},
		{"stale in a shared cache", http.Header{"Cache-Control": {"max-age=600"}, "Age": {"900"}}, 10 * time.Second},
		{"Expires", http.Header{"Date": {"Sun, 01 Mar 2026 12:00:00 GMT"}, "Expires": {"Sun, 01 Mar 2026 12:03:00 GMT"}}, 3 * time.Minute},
		{"Expires 0", http.Header{"Expires": {"0"}}, 15 * time.Minute},
		{"Expires past", http.Header{"Expires": {"Sun, 01 Mar 2026 11:00:00 GMT"}}, 15 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idp := newTestIdP(t, setOf(t, "rsa1"))
			idp.set(func(p *testIdP) { p.header = tc.header })
			h := startHarness(t, idp, nil)
			if got := h.nextIn(); got != tc.want {
				t.Errorf("next refresh in %s, want %s", got, tc.want)
			}
		})
	}
}

func TestCacheControlChangesBetweenRefreshes(t *testing.T) {
	idp := newTestIdP(t, setOf(t, "rsa1"))
	idp.set(func(p *testIdP) { p.cacheControl = "max-age=60" })
	h := startHarness(t, idp, nil)
	if got := h.nextIn(); got != time.Minute {
		t.Fatalf("next in %s", got)
	}
	h.fire()
	idp.wantCounts(t, 1, 2)
	idp.set(func(p *testIdP) { p.cacheControl = "no-cache" })
	h.fire()
	idp.wantCounts(t, 1, 3)
	if got := h.nextIn(); got != 15*time.Minute {
		t.Errorf("next in %s after no-cache", got)
	}
	if got := h.refreshes("success", "interval"); got != 2 {
		t.Errorf("interval successes = %v", got)
	}
}

func TestJitter(t *testing.T) {
	tests := []struct {
		rand  float64
		cache string
		want  time.Duration
	}{
		{0, "", 13*time.Minute + 30*time.Second},
		{0.25, "", 14*time.Minute + 15*time.Second},
		{0.75, "", 15*time.Minute + 45*time.Second},
		{0, "max-age=100", 90 * time.Second},
		{0, "max-age=10", 10 * time.Second}, // 9s jittered, clamped to the floor
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.rand, tc.cache), func(t *testing.T) {
			idp := newTestIdP(t, setOf(t, "rsa1"))
			idp.set(func(p *testIdP) { p.cacheControl = tc.cache })
			h := startHarness(t, idp, func(o *Options) { o.Rand = func() float64 { return tc.rand } })
			if got := h.nextIn(); got != tc.want {
				t.Errorf("next refresh in %s, want %s", got, tc.want)
			}
		})
	}
}

func TestLookupHonoursItsContext(t *testing.T) {
	idp := newTestIdP(t, setOf(t, "rsa1"))
	h := startHarness(t, idp, nil)
	idp.serveKeys(setOf(t, "rsa1", "rsa2"))
	idp.drainArrivals()
	idp.stallJWKS()
	h.clock.Advance(10 * time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := h.cache.Lookup(ctx, "rsa2", jwa.RS256)
		first <- err
	}()
	idp.waitArrival(t)
	cancel()
	if err := <-first; err != context.Canceled {
		t.Fatalf("cancelled caller: %v", err)
	}

	// The fetch goes on for the others; a caller arriving now joins it.
	second := make(chan error, 1)
	go func() {
		_, err := h.lookup("rsa2", jwa.RS256)
		second <- err
	}()
	idp.unstall()
	if err := <-second; err != nil {
		t.Fatalf("second caller: %v", err)
	}
	idp.wantCounts(t, 1, 2)
}

func TestShutdownDuringFetchIsNotAnError(t *testing.T) {
	idp := newTestIdP(t, setOf(t, "rsa1"))
	h := startHarness(t, idp, nil)
	idp.drainArrivals()
	idp.stallJWKS()
	h.clock.Advance(15 * time.Minute)
	idp.waitArrival(t)
	h.stop()
	if got := h.refreshes("error", "interval"); got != 0 {
		t.Errorf("interval errors = %v after shutdown", got)
	}
	if !h.cache.Status().NextRefresh.IsZero() {
		t.Error("NextRefresh set after Run ended")
	}
	// With Run over, unknown kids no longer fetch.
	h.clock.Advance(time.Minute)
	if _, err := h.lookup("rsa2", jwa.RS256); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Lookup after Run: %v", err)
	}
	idp.wantCounts(t, 1, 2)
}

// TestStaticSet: a set parsed by ParseSet (a jwks_file, read by the configuration) is served
// from New on, never fetched, and reported as a file.
func TestStaticSet(t *testing.T) {
	reg := prometheus.NewRegistry()
	logs := &syncBuffer{}
	set := staticSet(t, setJSON(t, jwkJSON(t, keys(t)["rsa1"].public, nil), jwkJSON(t, keys(t)["ed"].public, nil),
		jwkJSON(t, keys(t)["rsa2"].public, map[string]any{"use": "enc"})))
	if set.Len() != 2 {
		t.Errorf("Len = %d, want 2", set.Len())
	}
	c, err := New(Options{Issuer: "https://sso.example.com/realms/demo", StaticSet: set, Metrics: NewMetrics(reg),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), HTTPClient: &http.Client{Transport: failTransport{t}}})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Ready() {
		t.Fatal("not ready after New with a static set")
	}
	contains(t, "logs", logs.String(), `level=DEBUG msg="jwks: key skipped" key="keys[2] (kid \"rsa2\"): use \"enc\" is not sig"`,
		`level=INFO msg="jwks: static key set loaded" keys=2 kids="[rsa1 ed]"`)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	if _, err := c.Lookup(context.Background(), "rsa1", jwa.RS256); err != nil {
		t.Error(err)
	}
	if _, err := c.Lookup(context.Background(), "ed", jwa.EdDSA); err != nil {
		t.Error(err)
	}
	if _, err := c.Lookup(context.Background(), "other", jwa.RS256); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown kid: %v", err)
	}
	cancel()
	<-done
	if st := c.Status(); st.Source != SourceFile || st.Stale || st.Keys != 2 || st.LastError != "" {
		t.Errorf("Status = %+v", st)
	}
	wantMetrics(t, reg, "https://sso.example.com/realms/demo", lookupSeries(2, 1)+refreshSeries(0, 0, 0, 0, 0, 0)+
		keysSeries(2))
}

// TestParseSet: the errors the configuration reports for a jwks_file (config's TestLoadBadConfigs
// asserts what a user reads: these within its field path and advice).
func TestParseSet(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"not JSON", `keys`, "not a JWK Set: invalid character 'k' looking for beginning of value"},
		{"no keys array", `{"kid": "a"}`, `not a JWK Set: no "keys" array`},
		{"empty", `{"keys": []}`, "no usable keys: the key set is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseSet([]byte(tc.doc), testAlgorithms()); err == nil || err.Error() != tc.want {
				t.Errorf("ParseSet = %v\nwant %s", err, tc.want)
			}
		})
	}
	// Only the algorithms asked for, each once.
	set, err := ParseSet(setOf(t, "rsa1", "ec256"), []jwa.SignatureAlgorithm{jwa.ES256, jwa.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 1 || len(set.snap.byAlg[jwa.ES256]) != 1 || len(set.snap.byAlg) != 1 {
		t.Errorf("Len %d, by algorithm %v; want ec256 once, for ES256", set.Len(), set.snap.byAlg)
	}
	_, err = ParseSet(setOf(t, "rsa1"), []jwa.SignatureAlgorithm{jwa.HS256})
	if want := "no usable keys among 1 published (allowed algorithms HS256): keys[0] (kid \"rsa1\"): RSA alg RS256 key fits none of the allowed algorithms"; err == nil || err.Error() != want || !errors.Is(err, ErrNoUsableKeys) {
		t.Errorf("ParseSet for HS256 = %v\nwant %s", err, want)
	}
}

// failTransport fails the test on any request.
type failTransport struct{ t *testing.T }

func (f failTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.t.Errorf("unexpected request %s", r.URL)
	return nil, errors.New("no requests expected")
}

// TestNewRefusesProgrammingErrors: New takes the options as the configuration validated and
// defaulted them, and refuses only what no configuration produces, with a plain error. What a
// user can get wrong is config's to say, with the field path (config's TestLoadBadConfigs:
// issuer_empty, issuer_not_url, jwks_uri_and_file, jwks_uri_not_url, alg_hmac, alg_none,
// refresh_zero, min_refresh_above_refresh, refresh_below_default_floor).
func TestNewRefusesProgrammingErrors(t *testing.T) {
	algs := []jwa.SignatureAlgorithm{jwa.RS256}
	fetching := func(change func(*Options)) Options {
		o := Options{Issuer: "https://a", Algorithms: algs, RefreshInterval: time.Minute, MinRefreshInterval: 10 * time.Second}
		change(&o)
		return o
	}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no issuer", fetching(func(o *Options) { o.Issuer = "" }), "jwks: Options.Issuer is empty"},
		{"static set and URI", Options{Issuer: "https://a", JWKSURI: "https://a/k", StaticSet: staticSet(t, setOf(t, "rsa1"))}, "jwks: Options.StaticSet and Options.JWKSURI are both set"},
		{"no algorithms", fetching(func(o *Options) { o.Algorithms = nil }), "jwks: Options.Algorithms is empty"},
		{"no refresh interval", fetching(func(o *Options) { o.RefreshInterval = 0 }), "jwks: Options.RefreshInterval (0s) and MinRefreshInterval (10s) must be positive"},
		// Formerly the floor was lowered to a short interval in silence; config refuses that.
		{"no floor", fetching(func(o *Options) { o.RefreshInterval, o.MinRefreshInterval = 5*time.Second, 0 }), "jwks: Options.RefreshInterval (5s) and MinRefreshInterval (0s) must be positive"},
		{"floor above interval", fetching(func(o *Options) { o.MinRefreshInterval = 2 * time.Minute }), "jwks: Options.MinRefreshInterval (2m0s) exceeds RefreshInterval (1m0s)"},
		{"negative size", fetching(func(o *Options) { o.MaxResponseBytes = -1 }), "jwks: Options.MaxResponseBytes (-1) is negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.opts); err == nil || err.Error() != tc.want {
				t.Errorf("New = %v\nwant %s", err, tc.want)
			}
		})
	}

	c, err := New(fetching(func(o *Options) { o.Algorithms = []jwa.SignatureAlgorithm{jwa.RS256, jwa.HS256} }))
	if err != nil {
		t.Fatal(err)
	}
	if c.interval != time.Minute || c.floor != 10*time.Second || c.maxBytes != 1<<20 || fmt.Sprint(c.algs) != "[RS256 HS256]" ||
		c.client == nil || c.client == http.DefaultClient || c.client.Timeout != 10*time.Second {
		t.Errorf("taken as given: interval %s, floor %s, max %d, algs %v, client %+v", c.interval, c.floor, c.maxBytes, c.algs, c.client)
	}
	if c.Ready() || c.Status().Issuer != "https://a" {
		t.Error("a new cache is ready or misnamed")
	}
	// A static set needs none of the fetching options.
	if _, err := New(Options{Issuer: "https://a", StaticSet: staticSet(t, setOf(t, "rsa1"))}); err != nil {
		t.Errorf("static set: %v", err)
	}
}

func TestRunTwice(t *testing.T) {
	idp := newTestIdP(t, setOf(t, "rsa1"))
	h := startHarness(t, idp, nil)
	h.cache.Run(context.Background()) // returns at once
	contains(t, "logs", h.logs.String(), "Run called twice")
}

// Logs name kids and reasons, never key material.
func TestLogsCarryNoKeyMaterial(t *testing.T) {
	ks := keys(t)
	priv, _ := jwkFromRaw(ks["rsa2"].raw, "leaked")
	idp := newTestIdP(t, setJSON(t, jwkJSON(t, ks["rsa1"].public, nil), jwkJSON(t, priv, nil)))
	h := startHarness(t, idp, nil)
	idp.serveKeys(setOf(t, "rsa3"))
	h.fire()
	logs := h.logs.String()
	contains(t, "logs", logs, `the key carries private material`, "leaked")
	for _, name := range []string{"rsa1", "rsa2", "rsa3"} {
		n := b64(ks[name].raw.(*rsa.PrivateKey).N.Bytes())
		d := b64(ks[name].raw.(*rsa.PrivateKey).D.Bytes())
		if strings.Contains(logs, n[:24]) || strings.Contains(logs, d[:24]) {
			t.Fatalf("key material of %s in the logs:\n%s", name, logs)
		}
	}
}

func BenchmarkLookupHit(b *testing.B) {
	c, err := New(Options{Issuer: "https://a", StaticSet: staticSet(b, setOf(b, "rsa1", "rsa2", "ec256")), Metrics: NewMetrics(nil)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer() // not the key generation nor the start fetch
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if keys, err := c.Lookup(ctx, "rsa2", jwa.RS256); err != nil || len(keys) != 1 {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLookupUnknownKIDWithinFloor is the answer to a kid the set lacks while the floor
// holds (random kids from an attacker): no request, only the refusal. Time is the wall clock,
// so the fake clock's lock is not what is measured; the loop's wait never fires.
func BenchmarkLookupUnknownKIDWithinFloor(b *testing.B) {
	idp := newTestIdP(b, setOf(b, "rsa1"))
	h := startHarness(b, idp, func(o *Options) {
		o.Clock = wallNow{o.Clock.(*fakeClock)}
		o.RefreshInterval, o.MinRefreshInterval = 2*time.Hour, time.Hour
	})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer() // not the key generation nor the start fetch
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.cache.Lookup(ctx, "rsa2", jwa.RS256); !errors.Is(err, ErrUnknownKey) {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	idp.wantCounts(b, 1, 1)
}

// wallNow is a fakeClock whose Now is the wall clock.
type wallNow struct{ *fakeClock }

func (wallNow) Now() time.Time { return time.Now() }

func BenchmarkContains(b *testing.B) {
	c, err := New(Options{Issuer: "https://a", StaticSet: staticSet(b, setOf(b, "rsa1", "rsa2", "ec256"))})
	if err != nil {
		b.Fatal(err)
	}
	keys, _ := c.Lookup(context.Background(), "rsa1", jwa.RS256)
	tp := keys[0].Thumbprint
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if !c.Contains(tp) {
			b.Fatal("missing")
		}
	}
}

// A degenerate Ed25519 key never gets into the set, whichever way the set is loaded: fetched,
// read from a JWKS file, or read from a persisted set (written by an older version) on a cold
// start. It is skipped with a warning that names the kid and the reason but no key material,
// and it is not counted among the usable keys; the good key beside it serves.
func TestDegenerateEd25519KeysAreNeverServed(t *testing.T) {
	ks := keys(t)
	good := jwkJSON(t, ks["ed"].public, nil)
	type loaded struct {
		cache  *Cache
		reg    *prometheus.Registry
		logs   *syncBuffer
		issuer string
		source Source
	}
	sources := map[string]func(t *testing.T, doc []byte) loaded{
		"fetched": func(t *testing.T, doc []byte) loaded {
			h := startHarness(t, newTestIdP(t, doc), nil)
			return loaded{h.cache, h.reg, h.logs, h.opts.Issuer, SourceFetched}
		},
		"jwks_file": func(t *testing.T, doc []byte) loaded {
			l := loaded{reg: prometheus.NewRegistry(), logs: &syncBuffer{}, issuer: "https://sso.example.com", source: SourceFile}
			c, err := New(Options{Issuer: l.issuer, StaticSet: staticSet(t, doc), Metrics: NewMetrics(l.reg),
				Logger: slog.New(slog.NewTextHandler(l.logs, nil)), HTTPClient: &http.Client{Transport: failTransport{t}}})
			if err != nil {
				t.Fatal(err)
			}
			l.cache = c
			return l
		},
		"persisted": func(t *testing.T, doc []byte) loaded {
			dir := t.TempDir()
			idp := newTestIdP(t, nil)
			idp.set(func(p *testIdP) { p.status = http.StatusServiceUnavailable })
			file, err := json.Marshal(persisted{Issuer: idp.URL(), FetchedAt: time.Unix(1_700_000_000, 0).UTC(), Set: doc})
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(persistPath(dir, idp.URL()), file, 0o600); err != nil {
				t.Fatal(err)
			}
			h := startHarness(t, idp, func(o *Options) { o.CacheDir = dir })
			return loaded{h.cache, h.reg, h.logs, h.opts.Issuer, SourcePersisted}
		},
	}
	for _, name := range []string{"fetched", "jwks_file", "persisted"} {
		for _, tc := range degenerateEd25519 {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				x, _ := hex.DecodeString(tc.hex)
				bad := jwkJSON(t, ks["ed"].public, map[string]any{"kid": "bad", "x": b64(x)})
				l := sources[name](t, setJSON(t, bad, good))
				if st := l.cache.Status(); !st.Loaded || st.Source != l.source || st.Keys != 1 {
					t.Errorf("Status = %+v, want 1 key from %s", st, l.source)
				}
				if got := metricValue(t, l.reg, "portcullis_jwks_keys", "issuer", l.issuer); got != 1 {
					t.Errorf("portcullis_jwks_keys = %v, want 1", got)
				}
				if _, err := l.cache.Lookup(context.Background(), "bad", jwa.EdDSA); !errors.Is(err, ErrUnknownKey) {
					t.Errorf(`Lookup("bad") = %v, want ErrUnknownKey`, err)
				}
				if got, err := l.cache.Lookup(context.Background(), "", jwa.EdDSA); err != nil || strings.Join(kidsOf(got), ",") != "ed" {
					t.Errorf(`Lookup("", EdDSA) = %v, %v; want only ed`, kidsOf(got), err)
				}
				logs := l.logs.String()
				contains(t, "logs", logs, `level=WARN msg="jwks: key skipped" key="keys[0] (kid \"bad\"): invalid OKP key: `+tc.reason+`"`)
				if strings.Contains(logs, b64(x)) || strings.Contains(logs, tc.hex) {
					t.Errorf("the logs carry the key:\n%s", logs)
				}
			})
		}
	}
}
