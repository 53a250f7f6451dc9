package authz

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/internal/devidp"
	"github.com/portcullis-authz/portcullis/introspect"
	"github.com/portcullis-authz/portcullis/rules"
)

// idpEndpoint is an httptest introspection endpoint: it answers what mode says (active with
// the claims of claims, inactive, malformed, slow, down) and counts the calls.
type idpEndpoint struct {
	srv   *httptest.Server
	calls atomic.Int32
	mu    sync.Mutex
	mode  string
	// claims are the members of an active answer besides active.
	claims map[string]any
	// release, when set, holds every answer until it is closed.
	release chan struct{}
}

func newIDPEndpoint(t testing.TB) *idpEndpoint {
	p := &idpEndpoint{mode: "active"}
	stop := make(chan struct{})
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.calls.Add(1)
		p.mu.Lock()
		mode, claims, release := p.mode, p.claims, p.release
		p.mu.Unlock()
		if release != nil {
			<-release
		}
		switch mode {
		case "active":
			m := map[string]any{"active": true}
			for k, v := range claims {
				m[k] = v
			}
			_ = json.NewEncoder(w).Encode(m)
		case "inactive":
			fmt.Fprint(w, `{"active":false}`)
		case "malformed":
			fmt.Fprint(w, `{"active":"yes"}`)
		case "slow":
			select { // past the client's timeout
			case <-r.Context().Done():
			case <-stop:
			}
		}
	}))
	t.Cleanup(p.srv.Close)
	t.Cleanup(func() { close(stop) }) // before Close, which waits for the handlers
	return p
}

func (p *idpEndpoint) set(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
}

// opaqueClaims is what Keycloak's endpoint answers for an access token of alice.
func opaqueClaims(exp time.Time) map[string]any {
	return map[string]any{"iss": benchIssuer, "sub": "alice-id", "aud": "orders-api", "typ": "Bearer", "exp": exp.Unix(),
		"client_id": "orders-web", "scope": "openid orders:write", "preferred_username": "alice", "email": "alice@example.com",
		"realm_access": map[string]any{"roles": []string{"user"}}}
}

const introspectionSecret = "introspection-test-secret"

func newTestIntrospector(t testing.TB, p *idpEndpoint, clk func() time.Time) *introspect.Introspector {
	t.Helper()
	in, err := introspect.New(introspect.Options{Issuer: benchIssuer, Endpoint: p.srv.URL + "/introspect", ClientID: "portcullis",
		ClientSecret: introspectionSecret, HTTPClient: p.srv.Client(), Timeout: 200 * time.Millisecond, CacheTTL: time.Minute,
		NegativeCacheTTL: 10 * time.Second, CacheSize: 100, Now: clk})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// introspectingEngine is benchEngine with a payments rule requiring active, before the api
// rule, and the issuer's introspector also taking opaque tokens when opaque is set.
func introspectingEngine(t testing.TB, in Introspector, opaque bool) (*Engine, *devidp.IdP) {
	t.Helper()
	v, idp := benchVerifier(t)
	specs := append([]rules.Spec{{Name: "payments", Match: rules.MatchSpec{Paths: []string{"/api/payments/**"}},
		Require: rules.RequireSpec{AnyRoles: []string{"user"}, Active: true}}}, benchSpecs("")...)
	set, err := rules.Compile(specs)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Rules: set, Verifier: v, Sources: []config.TokenSource{{Header: "authorization", Prefix: "Bearer "}},
		IdentityHeaders: attributes(t, map[string]string{"x-user-id": "sub", "x-user-name": "preferred_username", "x-user-roles": "roles"}),
		ForwardToken:    true, CacheSize: 100, Introspectors: map[string]Introspector{benchIssuer: in}}
	if opaque {
		o.Opaque = in
	}
	return NewEngine(o), idp
}

func request(path, tok string) *Request {
	return &Request{Method: "GET", Host: "api.example.com", Path: path, Headers: map[string]string{"authorization": "Bearer " + tok}}
}

// explain is the part of a decision these tests assert on, as one line.
func explain(d *Decision) string {
	s := fmt.Sprintf("%d %s %s", d.Status, d.Reason, d.Detail)
	if in := d.Introspection; in != nil {
		s += fmt.Sprintf(" [introspected at %s: active %v cached %v until %s]", in.Issuer, in.Active, in.Cached, in.Until.Format(time.TimeOnly))
	}
	for _, h := range d.Answer {
		if h.Name == "www-authenticate" {
			s += " | " + h.Value
		}
	}
	return s
}

// TestRequireActive: a verified JWT on a require.active route is introspected after its
// signature; the answer decides 200, 401 or 503; a route without active never asks.
func TestRequireActive(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second) // the tokens' exp is an hour from the real now
	clk := func() time.Time { return now }
	until := " until " + now.Add(time.Minute).Format(time.TimeOnly) + "]"
	zero := " until " + time.Time{}.Format(time.TimeOnly) + "]"
	const invalid = ` | Bearer realm="portcullis", error="invalid_token", error_description="the access token is invalid"`
	unavailable := func(p *idpEndpoint, problem string) string {
		return fmt.Sprintf("503 introspection_unavailable introspection unavailable: POST %s/introspect: %s [introspected at %s: active false cached false%s", p.srv.URL, problem, benchIssuer, zero)
	}
	tests := []struct {
		mode  string
		path  string
		want  func(p *idpEndpoint) string
		calls int32
	}{
		{"active", "/api/payments/1", func(*idpEndpoint) string {
			return "200 ok  [introspected at " + benchIssuer + ": active true cached false" + until
		}, 1},
		{"inactive", "/api/payments/1", func(*idpEndpoint) string {
			return "401 invalid_token the identity provider says the token is not active (token introspection at " + benchIssuer + "): revoked, its session ended, or expired [introspected at " + benchIssuer + ": active false cached false until " + now.Add(10*time.Second).Format(time.TimeOnly) + "]" + invalid
		}, 1},
		{"malformed", "/api/payments/1", func(p *idpEndpoint) string {
			return unavailable(p, "malformed answer: active is a string, not a boolean")
		}, 1},
		{"slow", "/api/payments/1", func(p *idpEndpoint) string { return unavailable(p, "timed out") }, 1},
		{"down", "/api/payments/1", func(p *idpEndpoint) string {
			return unavailable(p, "dial tcp "+strings.TrimPrefix(p.srv.URL, "http://")+": connect: connection refused")
		}, 0},
		{"inactive", "/api/orders/1", func(*idpEndpoint) string { return "200 ok " }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.mode+" "+tt.path, func(t *testing.T) {
			p := newIDPEndpoint(t)
			p.set(tt.mode)
			e, idp := introspectingEngine(t, newTestIntrospector(t, p, clk), false)
			tok := keycloakLike(t, idp, jwa.RS256)
			want := tt.want(p)
			if tt.mode == "down" {
				p.srv.Close()
			}
			d := e.Decide(context.Background(), request(tt.path, tok))
			if got := explain(d); got != want {
				t.Errorf("decision\n got: %s\nwant: %s", got, want)
			}
			if d.Allow != (d.Status == 200) {
				t.Errorf("allow %v with status %d", d.Allow, d.Status)
			}
			if n := p.calls.Load(); n != tt.calls {
				t.Errorf("calls = %d, want %d", n, tt.calls)
			}
		})
	}
}

// TestRequireActiveCached: the second decision is served from the introspection cache (no
// call), and says so.
func TestRequireActiveCached(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	p := newIDPEndpoint(t)
	e, idp := introspectingEngine(t, newTestIntrospector(t, p, func() time.Time { return now }), false)
	tok := keycloakLike(t, idp, jwa.RS256)
	for i, cached := range []bool{false, true, true} {
		d := e.Decide(context.Background(), request("/api/payments/1", tok))
		if !d.Allow || d.Introspection == nil || d.Introspection.Cached != cached || !d.Introspection.Until.Equal(now.Add(time.Minute)) {
			t.Fatalf("decision %d: %s", i, explain(d))
		}
	}
	if n := p.calls.Load(); n != 1 {
		t.Errorf("calls = %d", n)
	}
}

// TestForgedTokenNeverIntrospected: on a require.active route the signature and the sender
// binding are checked first: a forged or foreign token, or a bound token without its proof,
// never reaches the identity provider.
func TestForgedTokenNeverIntrospected(t *testing.T) {
	p := newIDPEndpoint(t)
	e, idp := introspectingEngine(t, newTestIntrospector(t, p, nil), true)
	good := keycloakLike(t, idp, jwa.RS256)
	parts := strings.Split(good, ".")
	forged := parts[0] + "." + strings.Split(keycloakLikeSub(t, idp, jwa.RS256, "admin"), ".")[1] + "." + parts[2]
	other, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	other.SetIssuer("https://elsewhere.example.com")
	foreign := keycloakLike(t, other, jwa.RS256)
	// Bound to a DPoP key and sent as Bearer: its binding is checked before introspection.
	bound := keycloakLikeClaims(t, idp, jwa.RS256, map[string]any{"cnf": map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}})
	for _, c := range []struct{ tok, want string }{
		{forged, "401 bad_signature"},
		{foreign, "401 unknown_issuer"},
		{bound, "401 invalid_token"},
		{"a.b.c%", "401 invalid_token"},
		{strings.Repeat("x", 16385), "401 invalid_token"},
	} {
		d := e.Decide(context.Background(), request("/api/payments/1", c.tok))
		if got := fmt.Sprintf("%d %s", d.Status, d.Reason); got != c.want || d.Introspection != nil {
			t.Errorf("%.20s: %s, want %s", c.tok, explain(d), c.want)
		}
	}
	if n := p.calls.Load(); n != 0 {
		t.Errorf("calls = %d; a refused token reached the identity provider", n)
	}
}

// TestOpaqueTokens: a token that is not a JWS is introspected at the opaque issuer and the
// answer is its identity, held to the issuer's checks; without an opaque issuer it is refused
// unsent.
func TestOpaqueTokens(t *testing.T) {
	const opaque = "2YotnFZFEjr1zCsicMWpAA"
	exp := time.Now().Add(time.Hour)
	tests := []struct {
		name   string
		claims map[string]any
		mode   string
		path   string
		want   string
	}{
		{"active", opaqueClaims(exp), "active", "/api/orders/1", "200 ok x-user-id=alice-id x-user-name=alice x-user-roles=user"},
		{"active on a require.active route", opaqueClaims(exp), "active", "/api/payments/1", "200 ok x-user-id=alice-id x-user-name=alice x-user-roles=user"},
		{"inactive", nil, "inactive", "/api/orders/1", "401 invalid_token the identity provider says the token is not active (token introspection at " + benchIssuer + "): revoked, its session ended, or expired"},
		{"another issuer's answer", withClaim(opaqueClaims(exp), "iss", "https://elsewhere.example.com"), "active", "/api/orders/1",
			`401 invalid_token introspection answer: iss "https://elsewhere.example.com" is not the introspecting issuer ` + benchIssuer},
		{"wrong audience", withClaim(opaqueClaims(exp), "aud", "account"), "active", "/api/orders/1",
			`401 wrong_audience introspection answer: aud is ["account"]; expected one of ["orders-api"]`},
		{"expired", withClaim(opaqueClaims(exp), "exp", exp.Add(-2*time.Hour).Unix()), "active", "/api/orders/1",
			"401 expired introspection answer: expired 1h0m0s ago"},
		{"no role", withClaim(opaqueClaims(exp), "realm_access", nil), "active", "/api/orders/1", `403 forbidden missing role "user"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newIDPEndpoint(t)
			p.set(tt.mode)
			p.claims = tt.claims
			e, _ := introspectingEngine(t, newTestIntrospector(t, p, nil), true)
			for range 2 {
				d := e.Decide(context.Background(), request(tt.path, opaque))
				got := fmt.Sprintf("%d %s %s", d.Status, d.Reason, d.Detail)
				if d.Allow {
					got = fmt.Sprintf("%d %s", d.Status, d.Reason)
					for _, h := range d.Upstream {
						got += " " + h.Name + "=" + h.Value
					}
				}
				got = expiredAgo.ReplaceAllString(got, "expired 1h0m0s ago") // the verifier's clock is the real one
				if got != tt.want {
					t.Errorf("decision\n got: %s\nwant: %s", got, tt.want)
				}
			}
			// The second decision took the cached answer (the inactive one too); an answer
			// already past its exp is not kept.
			want := int32(1)
			if tt.name == "expired" {
				want = 2
			}
			if n := p.calls.Load(); n != want {
				t.Errorf("calls = %d", n)
			}
		})
	}
	t.Run("no opaque issuer", func(t *testing.T) {
		p := newIDPEndpoint(t)
		e, _ := introspectingEngine(t, newTestIntrospector(t, p, nil), false)
		d := e.Decide(context.Background(), request("/api/orders/1", opaque))
		if got := fmt.Sprintf("%d %s %s", d.Status, d.Reason, d.Detail); got != "401 invalid_token not a JWT: expected three dot-separated parts" {
			t.Errorf("decision %s", got)
		}
		if n := p.calls.Load(); n != 0 {
			t.Errorf("calls = %d", n)
		}
	})
}

var expiredAgo = regexp.MustCompile(`expired 1h0m\d+s ago`)

func withClaim(m map[string]any, k string, v any) map[string]any {
	if v == nil {
		delete(m, k)
	} else {
		m[k] = v
	}
	return m
}

// TestNoIntrospectionForIssuer: a require.active rule and a token of an issuer without
// introspection: 403, as no token of that issuer could pass.
func TestNoIntrospectionForIssuer(t *testing.T) {
	p := newIDPEndpoint(t)
	e, idp := introspectingEngine(t, newTestIntrospector(t, p, nil), false)
	e.introspectors = nil
	d := e.Decide(context.Background(), request("/api/payments/1", keycloakLike(t, idp, jwa.RS256)))
	want := "403 forbidden missing an active token (require.active), which issuer " + benchIssuer + " cannot confirm: it has no introspection"
	if got := explain(d); got != want {
		t.Errorf("decision\n got: %s\nwant: %s", got, want)
	}
}

// TestDecideSingleFlight: 100 concurrent decisions for one token on a require.active route
// make exactly one introspection call.
func TestDecideSingleFlight(t *testing.T) {
	p := newIDPEndpoint(t)
	p.release = make(chan struct{})
	e, idp := introspectingEngine(t, newTestIntrospector(t, p, nil), false)
	tok := keycloakLike(t, idp, jwa.RS256)
	if d := e.Decide(context.Background(), request("/api/orders/1", tok)); !d.Allow {
		t.Fatal(explain(d)) // the token cache holds it: the 100 below only introspect
	}
	const n = 100
	var started, wg sync.WaitGroup
	started.Add(n)
	results := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			results <- explain(e.Decide(context.Background(), request("/api/payments/1", tok)))
		}()
	}
	started.Wait()
	for p.calls.Load() == 0 {
		runtime.Gosched() // the first call is on its way; the others join it or the cache
	}
	close(p.release)
	wg.Wait()
	close(results)
	for r := range results {
		if !strings.HasPrefix(r, "200 ok") {
			t.Fatalf("decision %s", r)
		}
	}
	if c := p.calls.Load(); c != 1 {
		t.Errorf("calls = %d, want 1", c)
	}
}
