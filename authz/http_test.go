package authz

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portcullis-authz/portcullis/config"
)

// TestServeHTTP: the forward-auth front reads the original request from each trusted header
// convention or from its own request line behind path_prefix, and answers 200 with the
// identity headers in the response, or the deny status with the exact headers and body of the
// decision. Every answer is marked no-store.
func TestServeHTTP(t *testing.T) {
	f := newDecideFixture(t)
	reg := prometheus.NewRegistry()
	h := NewHTTPHandler(NewAuthorizer(f.engine, NewMetrics(reg), nil), config.ForwardAuth{TrustedHeaders: []string{"x-forwarded", "x-original"}, PathPrefix: "/authz"})
	good, expired := f.valid(), f.mint(f.idp, -10*time.Minute, 5*time.Minute, nil)

	alice := http.Header{"X-User-Id": {"alice-id"}, "X-User-Name": {"alice"}, "X-User-Email": {"alice@example.com"},
		"X-User-Roles": {"user"}, "X-User-Issuer": {benchIssuer}, "Cache-Control": {"no-store"}}
	// An anonymous allow sets no identity header and lists all of them for removal (Envoy's
	// http_service removes them; the other proxies clear them themselves).
	anonymous := http.Header{"Cache-Control": {"no-store"},
		"X-Envoy-Auth-Headers-To-Remove": {"x-user-email, x-user-id, x-user-issuer, x-user-name, x-user-roles"}}
	deny := func(challenge string) http.Header {
		h := http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"no-store"}}
		if challenge != "" {
			h.Set("Www-Authenticate", challenge)
		}
		return h
	}
	cases := []struct {
		name    string
		method  string
		target  string
		headers map[string]string
		status  int
		header  http.Header
		body    string
		reason  string // the portcullis_decisions_total reason label counted
	}{
		{"traefik/caddy: X-Forwarded-*", "GET", "/verify", map[string]string{"X-Forwarded-Method": "post", "X-Forwarded-Host": "api.example.com",
			"X-Forwarded-Uri": "/api/orders/1?x=1", "Authorization": "Bearer " + good}, 200, alice, "", "ok"},
		{"nginx: X-Original-URI and -Method", "GET", "/auth", map[string]string{"X-Original-URI": "/api/admin/users", "X-Original-Method": "DELETE",
			"Authorization": "Bearer " + good}, 403, deny(""), forbiddenBody, "forbidden"},
		{"nginx without a method header: the subrequest's own", "GET", "/auth", map[string]string{"X-Original-URI": "/healthz"}, 200, anonymous, "", "public"},
		{"envoy http_service: the request line behind path_prefix", "POST", "/authz/api/reports/q?x=1", map[string]string{"Authorization": "Bearer " + good},
			403, deny(scopeChallenge), scopeBody, "insufficient_scope"},
		{"path_prefix alone is the root", "GET", "/authz", map[string]string{"Authorization": "Bearer " + good}, 403, deny(""), noRuleBody, "no_rule"},
		{"request line outside path_prefix", "GET", "/other/api/x", map[string]string{"Authorization": "Bearer " + good}, 400, deny(""), badBody, "bad_request"},
		{"conventions in conflict", "GET", "/auth", map[string]string{"X-Forwarded-Uri": "/healthz", "X-Original-URI": "/api/admin/users"},
			400, deny(""), badBody, "bad_request"},
		{"conventions agreeing", "GET", "/auth", map[string]string{"X-Forwarded-Uri": "/api/x", "X-Original-URI": "/api/x", "Authorization": "Bearer " + good},
			200, alice, "", "ok"},
		{"ambiguous path", "GET", "/auth", map[string]string{"X-Forwarded-Uri": "/api/a%2Fb", "Authorization": "Bearer " + good}, 400, deny(""), badBody, "bad_request"},
		{"no token", "GET", "/auth", map[string]string{"X-Forwarded-Uri": "/api/x"}, 401, deny(noTokenChallenge), noTokenBody, "no_token"},
		{"not a JWT", "GET", "/auth", map[string]string{"X-Forwarded-Uri": "/api/x", "Authorization": "Bearer abc"},
			401, deny(invalidTokenChallenge("the access token is invalid")), invalidTokenBody("the access token is invalid"), "invalid_token"},
		{"expired", "GET", "/auth", map[string]string{"X-Forwarded-Uri": "/api/x", "Authorization": "Bearer " + expired},
			401, deny(invalidTokenChallenge("the access token has expired")), invalidTokenBody("the access token has expired"), "expired"},
		{"keys never loaded", "GET", "/auth", map[string]string{"X-Forwarded-Uri": "/api/x", "Authorization": "Bearer " + f.mint(f.down, 0, time.Minute, nil)},
			503, deny(""), unavailableBody, "unavailable"},
		{"no rule", "GET", "/auth", map[string]string{"X-Forwarded-Uri": "/other", "Authorization": "Bearer " + good}, 403, deny(""), noRuleBody, "no_rule"},
		{"token in the cookie", "GET", "/auth", map[string]string{"X-Forwarded-Uri": "/api/x", "Cookie": "theme=dark; access_token=" + good}, 200, alice, "", "ok"},
		// The proxy copies the response's identity headers; spoofed request copies never come back.
		{"public rule, invalid token, spoofed identity", "GET", "/auth", map[string]string{"X-Forwarded-Uri": "/healthz", "Authorization": "Bearer abc",
			"X-User-Id": "admin-id", "X-User-Roles": "admin"}, 200, anonymous, "", "public"},
		{"public rule, valid token", "GET", "/auth", map[string]string{"X-Forwarded-Uri": "/healthz", "Authorization": "Bearer " + good,
			"X-User-Id": "admin-id"}, 200, alice, "", "public"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(c.method, "http://portcullis.local"+c.target, nil)
			for k, v := range c.headers {
				r.Header.Set(k, v)
			}
			decision := "deny"
			if c.status == 200 {
				decision = "allow"
			}
			counter := func() float64 {
				return testutil.ToFloat64(h.authz.metrics.decisions.WithLabelValues(FrontHTTP, decision, c.reason))
			}
			before := counter()
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			res := w.Result()
			if res.StatusCode != c.status {
				t.Errorf("status %d, want %d", res.StatusCode, c.status)
			}
			if !reflect.DeepEqual(res.Header, c.header) {
				t.Errorf("headers\n got %v\nwant %v", res.Header, c.header)
			}
			if got := w.Body.String(); got != c.body {
				t.Errorf("body %q, want %q", got, c.body)
			}
			if got := counter(); got != before+1 {
				t.Errorf("decisions{http, %s, %s} went from %v to %v", decision, c.reason, before, got)
			}
		})
	}
}

// TestServeHTTPFollowsSwap: a reload swaps the engine and gives the handler the new
// forward-auth settings (as the server does); the next request is read and decided with both.
func TestServeHTTPFollowsSwap(t *testing.T) {
	prefixed := newDecideFixture(t)
	a := NewAuthorizer(prefixed.engine, nil, nil)
	h := NewHTTPHandler(a, config.ForwardAuth{PathPrefix: "/authz"})
	ask := func(target string, hdr map[string]string) int {
		r := httptest.NewRequest("GET", "http://portcullis.local"+target, nil)
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if got := ask("/authz/healthz", nil); got != 200 {
		t.Fatalf("before the swap: %d", got)
	}
	forwarded := newDecideFixture(t)
	a.Swap(forwarded.engine)
	h.SetForwardAuth(config.ForwardAuth{TrustedHeaders: []string{"x-forwarded"}})
	if a.Engine() != forwarded.engine {
		t.Fatal("Engine is not the swapped engine")
	}
	if got := ask("/authz/healthz", nil); got != 403 {
		t.Errorf("after the swap, the old prefix: %d, want 403 no_rule", got)
	}
	if got := ask("/verify", map[string]string{"X-Forwarded-Uri": "/healthz"}); got != 200 {
		t.Errorf("after the swap, X-Forwarded-Uri: %d, want 200", got)
	}
}
