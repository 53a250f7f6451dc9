package authz

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/rules"
)

// forwardTokenEngines are two engines reading the token from the Authorization header or the
// access_token cookie, with two identity headers, a protected and a public rule; one forwards
// the token, the other does not. tok is a valid token for both.
func forwardTokenEngines(t *testing.T) (forwarding, dropping *Engine, tok string) {
	t.Helper()
	v, idp := benchVerifier(t)
	set, err := rules.Compile([]rules.Spec{
		{Name: "health", Match: rules.MatchSpec{Paths: []string{"/healthz"}}, Public: true},
		{Name: "api", Match: rules.MatchSpec{Paths: []string{"/api/**"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	engine := func(forwardToken bool) *Engine {
		return NewEngine(Options{
			Rules: set, Verifier: v,
			Sources:         []config.TokenSource{{Header: "authorization", Prefix: "Bearer "}, {Cookie: "access_token"}},
			IdentityHeaders: attributes(t, map[string]string{"x-user-id": "sub", "x-user-email": "email"}),
			ForwardToken:    forwardToken, CacheSize: 16,
		})
	}
	return engine(true), engine(false), keycloakLike(t, idp, "RS256")
}

// TestServeHTTPForwardToken: the forward-auth front answers what the engine decided for the
// upstream request. With forward_token: false the token's header is listed in
// x-envoy-auth-headers-to-remove (Envoy's http_service removes what it lists) and a Cookie
// header that carried the token comes back without it, for the proxy to set; so are the
// identity headers the answer does not set. A deny lists nothing.
func TestServeHTTPForwardToken(t *testing.T) {
	keeping, dropping, tok := forwardTokenEngines(t)
	const sub = "6f1c2d7e-1b8a-4a55-9a8e-0d6c1f1f2a3b"
	answer := func(kv ...string) http.Header {
		h := http.Header{"Cache-Control": {"no-store"}}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	alice := []string{"X-User-Id", sub, "X-User-Email", "alice@example.com"}
	cases := []struct {
		name    string
		engine  *Engine
		uri     string
		headers map[string]string
		status  int
		want    http.Header
	}{
		{"header token removed", dropping, "/api/x", map[string]string{"Authorization": "Bearer " + tok}, 200,
			answer(append(alice, "X-Envoy-Auth-Headers-To-Remove", "authorization")...)},
		{"token cookie cut out of the Cookie header", dropping, "/api/x", map[string]string{"Cookie": "theme=dark; access_token=" + tok + "; lang=en"}, 200,
			answer(append(alice, "Cookie", "theme=dark; lang=en")...)},
		{"a Cookie header of the token alone removed", dropping, "/api/x", map[string]string{"Cookie": "access_token=" + tok}, 200,
			answer(append(alice, "X-Envoy-Auth-Headers-To-Remove", "cookie")...)},
		{"anonymous allow: identity headers and the token removed", dropping, "/healthz", map[string]string{"Authorization": "Bearer not-a-jwt"}, 200,
			answer("X-Envoy-Auth-Headers-To-Remove", "x-user-email, x-user-id, authorization")},
		{"deny: nothing for the upstream", dropping, "/api/x", map[string]string{"Authorization": "Bearer not-a-jwt"}, 401,
			answer("Content-Type", "application/json", "Www-Authenticate", invalidTokenChallenge("the access token is invalid"))},
		{"forward_token: true keeps the token", keeping, "/api/x", map[string]string{"Authorization": "Bearer " + tok, "Cookie": "access_token=x"}, 200,
			answer(alice...)},
		{"forward_token: true, anonymous: identity headers removed", keeping, "/healthz", nil, 200,
			answer("X-Envoy-Auth-Headers-To-Remove", "x-user-email, x-user-id")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := NewHTTPHandler(NewAuthorizer(c.engine, nil, nil), config.ForwardAuth{TrustedHeaders: []string{config.ConventionXForwarded}})
			r := httptest.NewRequest("GET", "http://portcullis.local/verify", nil)
			r.Header.Set("X-Forwarded-Uri", c.uri)
			for k, v := range c.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != c.status {
				t.Errorf("status %d, want %d", w.Code, c.status)
			}
			if got := w.Result().Header; !reflect.DeepEqual(got, c.want) {
				t.Errorf("answer headers\n got %v\nwant %v", got, c.want)
			}
		})
	}
}

// TestServeHTTPFollowsSetForwardAuth: the forward-auth settings are the HTTP front's own; a
// reload changes them with SetForwardAuth, and the next request is read the new way.
func TestServeHTTPFollowsSetForwardAuth(t *testing.T) {
	e, _, _ := forwardTokenEngines(t)
	h := NewHTTPHandler(NewAuthorizer(e, nil, nil), config.ForwardAuth{PathPrefix: "/authz"})
	ask := func(target string) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "http://portcullis.local"+target, nil))
		return w.Code
	}
	if got := ask("/authz/healthz"); got != 200 {
		t.Fatalf("behind path_prefix /authz: %d, want 200", got)
	}
	h.SetForwardAuth(config.ForwardAuth{PathPrefix: "/check"})
	if got := ask("/authz/healthz"); got != 400 {
		t.Errorf("the old prefix after the change: %d, want 400", got)
	}
	if got := ask("/check/healthz"); got != 200 {
		t.Errorf("the new prefix: %d, want 200", got)
	}
}
