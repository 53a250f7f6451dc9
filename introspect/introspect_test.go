package introspect

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const (
	testToken  = "opaque-token-value-9f8e7d"
	testSecret = "s3cr3t-value"
	testClient = "portcullis"
)

// clock is an injected clock the tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// provider is an httptest introspection endpoint that can answer active, inactive, malformed,
// slow or down, and counts the calls it gets.
type provider struct {
	t      *testing.T
	srv    *httptest.Server
	calls  atomic.Int32
	mu     sync.Mutex
	status int
	body   string
	// hold, when set, is waited on before answering (a slow provider, or a call held open
	// while concurrent checks pile up).
	hold chan struct{}
	// bad lists what was wrong with a request, for the test to report.
	bad []string
}

func newProvider(t *testing.T) *provider {
	p := &provider{t: t, status: 200}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /introspect", p.introspect)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"issuer": %q, "introspection_endpoint": %q}`, p.srv.URL, p.srv.URL+"/introspect")
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *provider) answer(status int, body string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status, p.body = status, body
}

func (p *provider) introspect(w http.ResponseWriter, r *http.Request) {
	p.calls.Add(1)
	p.mu.Lock()
	hold, status, body := p.hold, p.status, p.body
	p.mu.Unlock()
	var bad []string
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		bad = append(bad, "content-type "+ct)
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token") != testToken || r.PostForm.Get("token_type_hint") != "access_token" || len(r.URL.RawQuery) > 0 {
		bad = append(bad, fmt.Sprintf("form %v query %q", r.PostForm, r.URL.RawQuery))
	}
	if id, secret, ok := r.BasicAuth(); !ok || id != testClient || secret != testSecret {
		bad = append(bad, "basic auth "+r.Header.Get("Authorization"))
	}
	if len(bad) > 0 {
		p.mu.Lock()
		p.bad = append(p.bad, bad...)
		p.mu.Unlock()
	}
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func (p *provider) checkRequests() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.bad) > 0 {
		p.t.Errorf("bad introspection requests: %q", p.bad)
	}
}

var epoch = time.Unix(1_800_000_000, 0)

type setup struct {
	p   *provider
	clk *clock
	in  *Introspector
	reg *prometheus.Registry
	log *bytes.Buffer
}

func newSetup(t *testing.T, mod func(*Options)) *setup {
	t.Helper()
	s := &setup{p: newProvider(t), clk: &clock{t: epoch}, reg: prometheus.NewRegistry(), log: &bytes.Buffer{}}
	o := Options{
		Issuer: s.p.srv.URL, Endpoint: s.p.srv.URL + "/introspect", ClientID: testClient, ClientSecret: testSecret,
		HTTPClient: s.p.srv.Client(), Timeout: 2 * time.Second, CacheTTL: time.Minute, NegativeCacheTTL: 10 * time.Second,
		CacheSize: 100, Now: s.clk.Now, Metrics: NewMetrics(s.reg), Logger: slog.New(slog.NewTextHandler(s.log, nil)),
	}
	if mod != nil {
		mod(&o)
	}
	in, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	s.in = in
	t.Cleanup(func() {
		s.p.checkRequests()
		if l := s.log.String(); strings.Contains(l, testToken) || strings.Contains(l, testSecret) ||
			strings.Contains(l, base64.StdEncoding.EncodeToString([]byte(testClient+":"+testSecret))) {
			t.Errorf("the log holds the token or the secret:\n%s", l)
		}
	})
	return s
}

func (s *setup) check(t *testing.T, notAfter time.Time) (Answer, error) {
	t.Helper()
	return s.in.Check(context.Background(), KeyOf(testToken), testToken, notAfter)
}

func activeBody(exp time.Time) string {
	return fmt.Sprintf(`{"active": true, "sub": "alice", "scope": "openid orders", "client_id": "web", "exp": %d, "iss": "https://sso.example/realms/demo", "aud": "orders-api"}`, exp.Unix())
}

// TestAnswers: each kind of answer the provider gives, and what Check makes of it.
func TestAnswers(t *testing.T) {
	exp := epoch.Add(time.Hour)
	tests := []struct {
		name    string
		status  int
		body    string
		active  bool
		claims  string // fmt %v of the claims
		wantErr string
	}{
		{name: "active", status: 200, body: activeBody(exp), active: true,
			claims: "map[aud:orders-api client_id:web exp:1.8000036e+09 iss:https://sso.example/realms/demo scope:openid orders sub:alice]"},
		{name: "inactive", status: 200, body: `{"active": false}`, claims: "map[]"},
		{name: "inactive with claims", status: 200, body: `{"active": false, "sub": "alice"}`, claims: "map[]"},
		{name: "not JSON", status: 200, body: `<html>oops</html>`, wantErr: "malformed answer: not a JSON object"},
		{name: "JSON array", status: 200, body: `[true]`, wantErr: "malformed answer: not a JSON object"},
		{name: "null", status: 200, body: `null`, wantErr: "malformed answer: not a JSON object"},
		{name: "active missing", status: 200, body: `{"sub": "alice"}`, wantErr: "malformed answer: no active member"},
		{name: "active twice, the last true", status: 200, body: `{"active": false, "active": true}`, wantErr: "malformed answer: a member name appears twice"},
		{name: "sub twice", status: 200, body: `{"active": true, "sub": "alice", "sub": "admin"}`, wantErr: "malformed answer: a member name appears twice"},
		{name: "duplicate in a nested claim", status: 200, body: `{"active": true, "realm_access": {"roles": ["user"], "roles": ["admin"]}}`, wantErr: "malformed answer: a member name appears twice"},
		{name: "trailing garbage", status: 200, body: `{"active": true} {"active": false}`, wantErr: "malformed answer: not valid JSON"},
		{name: "active a string", status: 200, body: `{"active": "true"}`, wantErr: "malformed answer: active is a string, not a boolean"},
		{name: "active null", status: 200, body: `{"active": null}`, wantErr: "malformed answer: active is a null, not a boolean"},
		{name: "exp a string", status: 200, body: `{"active": true, "exp": "soon"}`, wantErr: "malformed answer: exp is not a NumericDate"},
		{name: "server error", status: 500, body: `{"active": true}`, wantErr: "HTTP 500"},
		{name: "client refused", status: 401, body: `{"error": "invalid_client"}`,
			wantErr: "HTTP 401; the endpoint refused Portcullis's client credentials (check client_id and client_secret_file, and that the client is confidential)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSetup(t, nil)
			s.p.answer(tt.status, tt.body)
			ans, err := s.check(t, time.Time{})
			if tt.wantErr != "" {
				want := fmt.Sprintf("introspection unavailable: POST %s/introspect: %s", s.p.srv.URL, tt.wantErr)
				if err == nil || err.Error() != want || !errors.Is(err, ErrUnavailable) {
					t.Fatalf("err = %v\nwant %s", err, want)
				}
				if got := testutil.ToFloat64(s.in.metrics.calls[resultError]); got != 1 {
					t.Errorf("error calls = %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ans.Active != tt.active || fmt.Sprint(map[string]any(ans.Claims)) != tt.claims || ans.Cached {
				t.Errorf("answer %+v", ans)
			}
			result := resultInactive
			if tt.active {
				result = resultActive
			}
			if got := testutil.ToFloat64(s.in.metrics.calls[result]); got != 1 {
				t.Errorf("%s calls = %v", result, got)
			}
		})
	}
}

// TestDown: a provider that refuses connections, and one that is too slow, are
// ErrUnavailable, and nothing is cached: the next check asks again.
func TestDown(t *testing.T) {
	t.Run("down", func(t *testing.T) {
		s := newSetup(t, nil)
		s.p.srv.Close()
		_, err := s.check(t, time.Time{})
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("err = %v", err)
		}
		if l := s.log.String(); !strings.Contains(l, "introspection failed") {
			t.Errorf("not logged: %s", l)
		}
	})
	t.Run("slow", func(t *testing.T) {
		s := newSetup(t, func(o *Options) { o.Timeout = 50 * time.Millisecond })
		s.p.answer(200, activeBody(epoch.Add(time.Hour)))
		s.p.hold = make(chan struct{}) // never answers
		defer close(s.p.hold)
		_, err := s.check(t, time.Time{})
		want := fmt.Sprintf("introspection unavailable: POST %s/introspect: timed out", s.p.srv.URL)
		if err == nil || err.Error() != want {
			t.Fatalf("err = %v\nwant %s", err, want)
		}
		s.p.mu.Lock()
		s.p.hold = nil
		s.p.mu.Unlock()
		if _, err := s.check(t, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if n := s.p.calls.Load(); n != 2 {
			t.Errorf("calls = %d; a failure must not be cached", n)
		}
	})
}

// TestPositiveCacheBounds: a positive answer is kept min(cache_ttl, exp − now), and never
// past the token's own expiry (notAfter) either.
func TestPositiveCacheBounds(t *testing.T) {
	tests := []struct {
		name     string
		exp      time.Duration // answer's exp from now
		notAfter time.Duration // 0 = none
		kept     time.Duration
	}{
		{"cache_ttl first", time.Hour, 0, time.Minute},
		{"exp first", 10 * time.Second, 0, 10 * time.Second},
		{"token exp first", time.Hour, 20 * time.Second, 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSetup(t, nil)
			s.p.answer(200, activeBody(epoch.Add(tt.exp)))
			var notAfter time.Time
			if tt.notAfter > 0 {
				notAfter = epoch.Add(tt.notAfter)
			}
			ans, err := s.check(t, notAfter)
			if err != nil || !ans.Active || ans.Cached || !ans.Until.Equal(epoch.Add(tt.kept)) {
				t.Fatalf("first: %+v %v; want until %s", ans, err, epoch.Add(tt.kept))
			}
			s.clk.Add(tt.kept - time.Millisecond)
			if ans, err := s.check(t, notAfter); err != nil || !ans.Cached {
				t.Fatalf("just before: %+v %v", ans, err)
			}
			if n := s.p.calls.Load(); n != 1 {
				t.Fatalf("calls = %d before the entry's end", n)
			}
			s.clk.Add(time.Millisecond)
			if ans, err := s.check(t, notAfter); err != nil || ans.Cached {
				t.Fatalf("at the end: %+v %v", ans, err)
			}
			if n := s.p.calls.Load(); n != 2 {
				t.Fatalf("calls = %d; the entry outlived its bound", n)
			}
			if hit, miss := testutil.ToFloat64(s.in.metrics.hit), testutil.ToFloat64(s.in.metrics.miss); hit != 1 || miss != 2 {
				t.Errorf("lookups hit %v miss %v", hit, miss)
			}
		})
	}
}

// TestExpiredAnswerNotCached: an active answer whose exp has passed is not cached.
func TestExpiredAnswerNotCached(t *testing.T) {
	s := newSetup(t, nil)
	s.p.answer(200, activeBody(epoch.Add(-time.Second)))
	for range 2 {
		if ans, err := s.check(t, time.Time{}); err != nil || !ans.Until.IsZero() {
			t.Fatalf("%+v %v", ans, err)
		}
	}
	if n := s.p.calls.Load(); n != 2 {
		t.Errorf("calls = %d", n)
	}
}

// TestNegativeCache: active: false is remembered negative_cache_ttl, then asked again.
func TestNegativeCache(t *testing.T) {
	s := newSetup(t, nil)
	s.p.answer(200, `{"active": false}`)
	ans, err := s.check(t, time.Time{})
	if err != nil || ans.Active || !ans.Until.Equal(epoch.Add(10*time.Second)) {
		t.Fatalf("%+v %v", ans, err)
	}
	for range 5 {
		s.clk.Add(time.Second)
		if ans, err := s.check(t, time.Time{}); err != nil || ans.Active || !ans.Cached {
			t.Fatalf("replayed: %+v %v", ans, err)
		}
	}
	if n := s.p.calls.Load(); n != 1 {
		t.Fatalf("calls = %d; a revoked token replayed must not reach the provider", n)
	}
	s.clk.Add(5 * time.Second)
	s.p.answer(200, activeBody(epoch.Add(time.Hour)))
	if ans, err := s.check(t, time.Time{}); err != nil || !ans.Active {
		t.Fatalf("after negative_cache_ttl: %+v %v", ans, err)
	}
	if n := s.p.calls.Load(); n != 2 {
		t.Errorf("calls = %d", n)
	}
}

// TestSingleFlight: 100 concurrent checks of one token make one call, with the cache on and
// with it off (then every check waits on the one call in progress).
func TestSingleFlight(t *testing.T) {
	for _, size := range []int{100, 0} {
		t.Run(fmt.Sprintf("cache %d", size), func(t *testing.T) {
			s := newSetup(t, func(o *Options) { o.CacheSize = size })
			s.p.answer(200, activeBody(epoch.Add(time.Hour)))
			s.p.hold = make(chan struct{})
			const n = 100
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ans, err := s.check(t, time.Time{})
					if err == nil && !ans.Active {
						err = errors.New("not active")
					}
					errs <- err
				}()
			}
			// Hold the call until every other check waits for it.
			for {
				s.in.flightMu.Lock()
				f := s.in.flights[KeyOf(testToken)]
				waiting := int32(0)
				if f != nil {
					waiting = f.waiters.Load()
				}
				s.in.flightMu.Unlock()
				if waiting == n-1 || s.p.calls.Load() > 1 { // the latter: no single flight
					break
				}
				runtime.Gosched()
			}
			close(s.p.hold)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if c := s.p.calls.Load(); c != 1 {
				t.Errorf("calls = %d, want 1", c)
			}
		})
	}
}

// TestWaiterGivesUp: a check whose context ends while another makes the call returns
// ErrUnavailable; the call goes on and fills the cache.
func TestWaiterGivesUp(t *testing.T) {
	s := newSetup(t, nil)
	s.p.answer(200, activeBody(epoch.Add(time.Hour)))
	s.p.hold = make(chan struct{})
	done := make(chan error, 1)
	go func() { _, err := s.check(t, time.Time{}); done <- err }()
	for s.p.calls.Load() == 0 {
		runtime.Gosched()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.in.Check(ctx, KeyOf(testToken), testToken, time.Time{}); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	close(s.p.hold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ans, err := s.check(t, time.Time{}); err != nil || !ans.Cached {
		t.Fatalf("%+v %v", ans, err)
	}
}

// TestDiscovery: without an endpoint, the discovery document's introspection_endpoint is
// used, read once.
func TestDiscovery(t *testing.T) {
	s := newSetup(t, func(o *Options) { o.Endpoint = "" })
	s.p.answer(200, activeBody(epoch.Add(time.Hour)))
	if ans, err := s.check(t, time.Time{}); err != nil || !ans.Active {
		t.Fatalf("%+v %v", ans, err)
	}
	if s.in.endpoint != s.p.srv.URL+"/introspect" {
		t.Errorf("endpoint %q", s.in.endpoint)
	}
}

// TestDiscoveryRefused: a discovery document of another issuer, or without an
// introspection_endpoint, or naming a plain-http endpoint elsewhere, is ErrUnavailable.
func TestDiscoveryRefused(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"other issuer", `{"issuer": "https://evil.example", "introspection_endpoint": "https://evil.example/i"}`,
			`discovery: ISSUER/.well-known/openid-configuration names issuer "https://evil.example" but the configured issuer is "ISSUER"`},
		{"no endpoint", `{"issuer": "ISSUER"}`,
			`discovery: ISSUER/.well-known/openid-configuration has no introspection_endpoint; set introspection.endpoint`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var url string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, strings.ReplaceAll(tt.doc, "ISSUER", url))
			}))
			defer srv.Close()
			url = srv.URL
			in, err := New(Options{Issuer: url, ClientID: testClient, ClientSecret: testSecret, Timeout: time.Second, HTTPClient: srv.Client()})
			if err != nil {
				t.Fatal(err)
			}
			_, err = in.Check(context.Background(), KeyOf(testToken), testToken, time.Time{})
			if want := "introspection unavailable: " + strings.ReplaceAll(tt.want, "ISSUER", url); err == nil || err.Error() != want {
				t.Fatalf("err = %v\nwant %s", err, want)
			}
		})
	}
}

// TestNoRedirect: a redirect is not followed: the token goes to the configured endpoint only.
func TestNoRedirect(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.RedirectHandler(other.URL, http.StatusTemporaryRedirect))
	defer srv.Close()
	in, err := New(Options{Issuer: srv.URL, Endpoint: srv.URL + "/i", ClientID: testClient, ClientSecret: testSecret, Timeout: time.Second, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = in.Check(context.Background(), KeyOf(testToken), testToken, time.Time{})
	want := fmt.Sprintf("introspection unavailable: POST %s/i: HTTP 307; redirects are not followed (the token goes to the configured endpoint only): configure the final URL", srv.URL)
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if elsewhere.Load() != 0 {
		t.Error("the token followed the redirect")
	}
}

// TestPlainHTTPEndpoint: a plain-http endpoint off loopback is refused for an https issuer.
func TestPlainHTTPEndpoint(t *testing.T) {
	_, err := New(Options{Issuer: "https://sso.example", Endpoint: "http://sso.example/introspect", ClientID: "c", ClientSecret: "s", Timeout: time.Second})
	want := `introspect: endpoint "http://sso.example/introspect" is plain http on a host other than loopback; the token and the client secret would travel unencrypted`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v", err)
	}
}

// TestCacheBounded: the cache holds at most CacheSize answers; the least recently used goes.
func TestCacheBounded(t *testing.T) {
	s := newSetup(t, func(o *Options) { o.CacheSize = 2 })
	s.p.answer(200, activeBody(epoch.Add(time.Hour)))
	for i := range 3 {
		k := KeyOf(fmt.Sprint(i))
		if _, err := s.in.Check(context.Background(), k, testToken, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.in.cache.lru.Len(); n != 2 {
		t.Errorf("entries = %d", n)
	}
	if _, ok := s.in.cache.get(KeyOf("0"), epoch); ok {
		t.Error("the oldest entry stayed")
	}
}
