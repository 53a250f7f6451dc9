package authz

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/internal/devidp"
	"github.com/portcullis-authz/portcullis/jwks"
	"github.com/portcullis-authz/portcullis/reason"
	"github.com/portcullis-authz/portcullis/rules"
	"github.com/portcullis-authz/portcullis/token"
)

// downIssuer is an issuer whose keys were never loaded (its identity provider unreachable since
// start).
const downIssuer = "https://down.example.com/realms/demo"

// neverLoaded is the key set of downIssuer.
type neverLoaded struct{}

func (neverLoaded) Lookup(context.Context, string, jwa.SignatureAlgorithm) ([]jwks.Key, error) {
	return nil, jwks.ErrNotLoaded
}

func (neverLoaded) Contains(string) bool { return false }

// decideFixture is an engine over two issuers (benchIssuer with its keys, downIssuer without)
// on a fixed clock, with one rule per branch of the decision order, and a way to mint tokens.
type decideFixture struct {
	t      *testing.T
	now    time.Time
	idp    *devidp.IdP // benchIssuer's
	down   *devidp.IdP // downIssuer's
	other  *devidp.IdP // benchIssuer's name, keys nobody publishes
	keys   *switchableKeys
	engine *Engine
}

// allIdentityHeaders is every configured identity header, sorted: what an anonymous allow
// removes.
const allIdentityHeaders = "[x-user-email x-user-id x-user-issuer x-user-name x-user-roles]"

func newDecideFixture(t *testing.T) *decideFixture {
	t.Helper()
	f := &decideFixture{t: t, now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	mk := func(issuer string) *devidp.IdP {
		idp, err := devidp.New()
		if err != nil {
			t.Fatal(err)
		}
		idp.SetIssuer(issuer)
		return idp
	}
	f.idp, f.down, f.other = mk(benchIssuer), mk(downIssuer), mk(benchIssuer)
	f.keys = &switchableKeys{keys: publicKeys(t, f.idp)}
	issuer := func(name string, keys token.KeySet) token.IssuerConfig {
		return token.IssuerConfig{Issuer: name, Keys: keys, Audiences: []string{"orders-api"}, Algorithms: []string{"RS256"},
			Leeway: 30 * time.Second, RolesClaims: claimPaths(t, "realm_access.roles"), TokenTypes: []string{"Bearer"}}
	}
	v, err := token.NewVerifier(token.Options{Issuers: []token.IssuerConfig{issuer(benchIssuer, f.keys), issuer(downIssuer, neverLoaded{})},
		MaxBytes: 8192, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile([]rules.Spec{
		{Name: "health", Match: rules.MatchSpec{Paths: []string{"/healthz"}, Methods: []string{"GET"}}, Public: true},
		{Name: "admin", Match: rules.MatchSpec{Paths: []string{"/api/admin/**"}}, Require: rules.RequireSpec{AnyRoles: []string{"admin"}}},
		{Name: "reports", Match: rules.MatchSpec{Paths: []string{"/api/reports/**"}}, Require: rules.RequireSpec{Scopes: []string{"reports:read"}}},
		{Name: "beta", Match: rules.MatchSpec{Paths: []string{"/api/beta/**"}}, DryRun: true, Require: rules.RequireSpec{AnyRoles: []string{"admin"}}},
		{Name: "api", Match: rules.MatchSpec{Paths: []string{"/api/**"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.engine = NewEngine(Options{Rules: set, Verifier: v,
		Sources:         []config.TokenSource{{Header: "authorization", Prefix: "Bearer "}, {Cookie: "access_token"}},
		IdentityHeaders: attributes(t, map[string]string{"x-user-id": "sub", "x-user-name": "preferred_username", "x-user-email": "email", "x-user-roles": "roles", "X-User-Issuer": "iss"}),
		ForwardToken:    true, CacheSize: 16})
	return f
}

// mint signs a token of idp issued at f.now+at, valid for ttl, for alice with the user role
// and the openid scope; extra claims are added (nil removes one).
func (f *decideFixture) mint(idp *devidp.IdP, at, ttl time.Duration, extra devidp.Claims) string {
	f.t.Helper()
	c := devidp.Claims{"sub": "alice-id", "typ": "Bearer", "aud": "orders-api", "preferred_username": "alice",
		"email": "alice@example.com", "realm_access": map[string]any{"roles": []string{"user"}}, "scope": "openid"}
	for k, v := range extra {
		c[k] = v
	}
	tok, err := idp.MintAt(jwa.RS256, c, f.now.Add(at), ttl)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

func (f *decideFixture) valid() string { return f.mint(f.idp, 0, 5*time.Minute, nil) }

func (f *decideFixture) admin() string {
	return f.mint(f.idp, 0, 5*time.Minute, devidp.Claims{"realm_access": map[string]any{"roles": []string{"admin"}}})
}

func (f *decideFixture) lookups() int {
	f.keys.mu.Lock()
	defer f.keys.mu.Unlock()
	return f.keys.lookups
}

func bearer(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }

// Exact deny bodies and WWW-Authenticate values of the answers table.
const (
	noRuleBody        = `{"error":"access_denied","error_description":"no rule allows this request"}`
	noTokenBody       = `{"error":"unauthorized","error_description":"a bearer token is required"}`
	forbiddenBody     = `{"error":"access_denied","error_description":"the access token does not grant this request"}`
	scopeBody         = `{"error":"insufficient_scope","error_description":"the access token lacks a required scope"}`
	unavailableBody   = `{"error":"temporarily_unavailable","error_description":"the identity provider's keys are not available yet"}`
	noTokenChallenge  = `Bearer realm="portcullis"`
	scopeChallenge    = `Bearer realm="portcullis", error="insufficient_scope", error_description="the access token lacks a required scope", scope="reports:read"`
	aliceHeaders      = "[{x-user-email alice@example.com} {x-user-id alice-id} {x-user-issuer " + benchIssuer + "} {x-user-name alice} {x-user-roles user}]"
	unavailableDetail = "the keys of issuer " + downIssuer + " have never been loaded"
)

func invalidTokenChallenge(description string) string {
	return `Bearer realm="portcullis", error="invalid_token", error_description="` + description + `"`
}

func invalidTokenBody(description string) string {
	return `{"error":"invalid_token","error_description":"` + description + `"}`
}

// decisionWant is what a test asserts of a Decision; every field is compared.
type decisionWant struct {
	allow    bool
	status   int
	reason   reason.Code
	rule     string
	set      string // fmt.Sprint(d.Upstream)
	remove   string // fmt.Sprint(d.UpstreamRemove)
	answer   string // fmt.Sprint(d.Answer), "" for none
	body     string
	detail   string // d.Evaluated().Detail: a dry-run rule's would-be deny explained
	missing  string // fmt.Sprint(d.Evaluated().Missing)
	sub      string // the identity's subject, "" for none
	dryRun   bool   // d.DryRun != nil
	would    bool   // d.DryRun.Allow
	noVerify bool   // no key lookup may happen
}

func checkDecision(t *testing.T, f *decideFixture, r *Request, want decisionWant) {
	t.Helper()
	before := f.lookups()
	d := f.engine.Decide(context.Background(), r)
	sub := ""
	if d.Identity != nil {
		sub = d.Identity.Subject
	}
	ev := d.Evaluated()
	got := decisionWant{allow: d.Allow, status: d.Status, reason: d.Reason, rule: d.Rule, set: fmt.Sprint(d.Upstream),
		remove: fmt.Sprint(d.UpstreamRemove), body: string(d.Body), detail: ev.Detail, missing: fmt.Sprint(ev.Missing), sub: sub,
		dryRun: d.DryRun != nil, would: d.DryRun != nil && d.DryRun.Allow, noVerify: want.noVerify}
	if len(d.Answer) > 0 {
		got.answer = fmt.Sprint(d.Answer)
	}
	if got != want {
		t.Errorf("decision\n got %+v\nwant %+v", got, want)
	}
	if want.noVerify && f.lookups() != before {
		t.Errorf("%d key lookups, want none", f.lookups()-before)
	}
	if strings.Contains(ev.Detail, "eyJ") {
		t.Errorf("the detail echoes a token: %s", ev.Detail)
	}
}

// TestDecideInvalidFrontRequest: a request the front could not reconstruct is a 400
// bad_request with the front's reason as detail, before the path is read, a rule is chosen or
// a token is verified.
func TestDecideInvalidFrontRequest(t *testing.T) {
	f := newDecideFixture(t)
	const why = "the trusted forward-auth headers disagree about the original request (x-original says GET /api/admin)"
	for name, r := range map[string]*Request{
		"with a valid token":                   {Method: "GET", Host: "api.example.com", Path: "/api/x", Headers: bearer(f.valid()), Invalid: why},
		"with an ambiguous path too":           {Method: "GET", Host: "api.example.com", Path: "/api/a%2Fb", Headers: bearer(f.valid()), Invalid: why},
		"naming a rule":                        {Method: "GET", Path: "/healthz", RuleName: "health", Invalid: why},
		"without headers (public rule's path)": {Method: "GET", Path: "/healthz", Invalid: why},
	} {
		t.Run(name, func(t *testing.T) {
			checkDecision(t, f, r, decisionWant{status: 400, reason: reason.BadRequest, set: "[]", answer: "[{content-type application/json}]",
				remove: "[]", body: badBody, detail: why, missing: "[]", noVerify: true})
		})
	}
}

// TestDecideNamedRule: a route's portcullis-rule names the rule to apply, whatever the path
// would match; a name that is not configured is a 403 no_rule saying so, without verifying the
// token.
func TestDecideNamedRule(t *testing.T) {
	f := newDecideFixture(t)
	cases := []struct {
		name string
		r    *Request
		want decisionWant
	}{
		{"unknown rule", &Request{Method: "GET", Host: "api.example.com", Path: "/api/x", Headers: bearer(f.admin()), RuleName: "nope"},
			decisionWant{status: 403, reason: reason.NoRule, set: "[]", answer: "[{content-type application/json}]", remove: "[]", body: noRuleBody,
				detail: `the route names rule "nope" (context extension portcullis-rule), which is not configured`, missing: "[]", noVerify: true}},
		{"rule names are exact", &Request{Method: "GET", Path: "/healthz", RuleName: "Health"},
			decisionWant{status: 403, reason: reason.NoRule, set: "[]", answer: "[{content-type application/json}]", remove: "[]", body: noRuleBody,
				detail: `the route names rule "Health" (context extension portcullis-rule), which is not configured`, missing: "[]", noVerify: true}},
		{"a public rule named on a protected path", &Request{Method: "POST", Path: "/api/admin/x", RuleName: "health"},
			decisionWant{allow: true, status: 200, reason: reason.Public, rule: "health", set: "[]", remove: allIdentityHeaders, missing: "[]"}},
		{"a protected rule named on a public path", &Request{Method: "GET", Path: "/healthz", Headers: bearer(f.valid()), RuleName: "admin"},
			decisionWant{status: 403, reason: reason.Forbidden, rule: "admin", set: "[]", answer: "[{content-type application/json}]", remove: "[]",
				body: forbiddenBody, detail: `missing role "admin"`, missing: `[role "admin"]`, sub: "alice-id"}},
		{"no rule named, none matches", &Request{Method: "GET", Host: "api.example.com", Path: "/other/./x?q=1", Headers: bearer(f.admin())},
			decisionWant{status: 403, reason: reason.NoRule, set: "[]", answer: "[{content-type application/json}]", remove: "[]", body: noRuleBody,
				detail: "no rule matches GET api.example.com/other/x", missing: "[]", noVerify: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkDecision(t, f, c.r, c.want) })
	}
}

// TestDecidePublicRule: on a public rule an absent or refused token is an anonymous allow,
// reason public, that removes every identity header and sets none; the refusal is kept as
// detail for the log. A valid token yields its identity headers.
func TestDecidePublicRule(t *testing.T) {
	f := newDecideFixture(t)
	anon := func(detail string) decisionWant {
		return decisionWant{allow: true, status: 200, reason: reason.Public, rule: "health", set: "[]", remove: allIdentityHeaders, detail: detail, missing: "[]"}
	}
	// Spoofed identity headers from the client change nothing: they are removed like the rest.
	spoofed := func(h map[string]string) map[string]string {
		h["x-user-id"], h["x-user-roles"] = "admin-id", "admin"
		return h
	}
	cases := []struct {
		name    string
		headers map[string]string
		want    decisionWant
	}{
		{"no token", spoofed(map[string]string{}), anon("")},
		{"not a JWT", spoofed(bearer("abc")), anon("anonymous: invalid_token: not a JWT: expected three dot-separated parts")},
		{"expired", spoofed(bearer(f.mint(f.idp, -10*time.Minute, 5*time.Minute, nil))), anon("anonymous: expired: expired 5m0s ago")},
		{"wrong audience", bearer(f.mint(f.idp, 0, time.Minute, devidp.Claims{"aud": "billing"})),
			anon(`anonymous: wrong_audience: aud is ["billing"]; expected one of ["orders-api"]`)},
		{"keys never loaded", bearer(f.mint(f.down, 0, time.Minute, nil)), anon("anonymous: unavailable: " + unavailableDetail)},
		{"cookie token, not a JWT", map[string]string{"cookie": "access_token=abc"}, anon("anonymous: invalid_token: not a JWT: expected three dot-separated parts")},
		{"valid token", spoofed(bearer(f.valid())),
			decisionWant{allow: true, status: 200, reason: reason.Public, rule: "health", set: aliceHeaders, remove: "[]", missing: "[]", sub: "alice-id"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkDecision(t, f, &Request{Method: "GET", Host: "h", Path: "/healthz", Headers: c.headers}, c.want)
		})
	}
}

// TestDecideRefusals: each way a token fails on a protected rule, with its status, reason,
// WWW-Authenticate, body and detail.
func TestDecideRefusals(t *testing.T) {
	f := newDecideFixture(t)
	good := f.valid()
	parts := strings.Split(good, ".")
	other := strings.Split(f.mint(f.idp, 0, 5*time.Minute, devidp.Claims{"sub": "mallory"}), ".")
	deny401 := func(reason reason.Code, description, detail string) decisionWant {
		return decisionWant{status: 401, reason: reason, rule: "api", remove: "[]", missing: "[]",
			set: "[]", answer: "[{content-type application/json} {www-authenticate " + invalidTokenChallenge(description) + "}]",
			body: invalidTokenBody(description), detail: detail}
	}
	cases := []struct {
		name    string
		path    string
		headers map[string]string
		want    decisionWant
	}{
		{"no token", "/api/x", map[string]string{"authorization": "Basic YTpi"}, decisionWant{status: 401, reason: reason.NoToken, rule: "api",
			set: "[]", answer: "[{content-type application/json} {www-authenticate " + noTokenChallenge + "}]", remove: "[]", body: noTokenBody,
			detail: "no token in header authorization, cookie access_token", missing: "[]", noVerify: true}},
		{"not a JWT", "/api/x", bearer("abc"), deny401(reason.InvalidToken, "the access token is invalid", "not a JWT: expected three dot-separated parts")},
		{"expired", "/api/x", bearer(f.mint(f.idp, -10*time.Minute, 5*time.Minute, nil)), deny401(reason.Expired, "the access token has expired", "expired 5m0s ago")},
		{"bad signature", "/api/x", bearer(parts[0] + "." + other[1] + "." + parts[2]),
			deny401(reason.BadSignature, "the access token signature is invalid", "signature does not verify with the RS256 key of "+benchIssuer)},
		{"unknown issuer", "/api/x", bearer(f.mint(f.idp, 0, time.Minute, devidp.Claims{"iss": "https://evil.example.com"})),
			deny401(reason.UnknownIssuer, "the access token issuer is not trusted", `issuer "https://evil.example.com" is not configured`)},
		{"unknown key", "/api/x", bearer(f.mint(f.other, 0, time.Minute, nil)),
			deny401(reason.UnknownKey, "the access token signing key is unknown", fmt.Sprintf("kid %q is not in the key set of %s", kidOf(t, f.mint(f.other, 0, time.Minute, nil)), benchIssuer))},
		{"wrong audience", "/api/x", bearer(f.mint(f.idp, 0, time.Minute, devidp.Claims{"aud": "billing"})),
			deny401(reason.WrongAudience, "the access token is not meant for this service", `aud is ["billing"]; expected one of ["orders-api"]`)},
		{"keys never loaded", "/api/x", bearer(f.mint(f.down, 0, time.Minute, nil)), decisionWant{status: 503, reason: reason.Unavailable, rule: "api",
			set: "[]", answer: "[{content-type application/json}]", remove: "[]", body: unavailableBody, detail: unavailableDetail, missing: "[]"}},
		{"role missing", "/api/admin/x", bearer(good), decisionWant{status: 403, reason: reason.Forbidden, rule: "admin",
			set: "[]", answer: "[{content-type application/json}]", remove: "[]", body: forbiddenBody, detail: `missing role "admin"`,
			missing: `[role "admin"]`, sub: "alice-id"}},
		{"scope missing", "/api/reports/q", bearer(good), decisionWant{status: 403, reason: reason.InsufficientScope, rule: "reports",
			set: "[]", answer: "[{content-type application/json} {www-authenticate " + scopeChallenge + "}]", remove: "[]", body: scopeBody,
			detail: `missing scope "reports:read"`, missing: `[scope "reports:read"]`, sub: "alice-id"}},
		{"allowed", "/api/x", bearer(good), decisionWant{allow: true, status: 200, reason: reason.OK, rule: "api", set: aliceHeaders, remove: "[]",
			missing: "[]", sub: "alice-id"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkDecision(t, f, &Request{Method: "GET", Host: "api.example.com", Path: c.path, Headers: c.headers}, c.want)
		})
	}
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	var hdr struct{ Kid string }
	if err == nil {
		err = json.Unmarshal(b, &hdr)
	}
	if err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}

// TestDecideDryRun: a dry-run rule's deny is served as an allow carrying the identity the token
// proved (or none), with the decision it would have been kept for logs and the dry-run metric.
func TestDecideDryRun(t *testing.T) {
	f := newDecideFixture(t)
	cases := []struct {
		name    string
		headers map[string]string
		want    decisionWant
	}{
		{"would deny 403", bearer(f.valid()), decisionWant{allow: true, status: 200, reason: reason.Forbidden, rule: "beta", set: aliceHeaders,
			remove: "[]", detail: `missing role "admin"`, missing: `[role "admin"]`, sub: "alice-id", dryRun: true}},
		{"would deny 401", nil, decisionWant{allow: true, status: 200, reason: reason.NoToken, rule: "beta", set: "[]",
			remove: allIdentityHeaders, detail: "no token in header authorization, cookie access_token", missing: "[]", dryRun: true}},
		{"would deny 401 (expired)", bearer(f.mint(f.idp, -10*time.Minute, 5*time.Minute, nil)), decisionWant{allow: true, status: 200,
			reason: reason.Expired, rule: "beta", set: "[]", remove: allIdentityHeaders, detail: "expired 5m0s ago", missing: "[]", dryRun: true}},
		{"would allow", bearer(f.admin()), decisionWant{allow: true, status: 200, reason: reason.OK, rule: "beta",
			set: strings.Replace(aliceHeaders, "{x-user-roles user}", "{x-user-roles admin}", 1), remove: "[]", missing: "[]", sub: "alice-id", dryRun: true, would: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkDecision(t, f, &Request{Method: "GET", Host: "api.example.com", Path: "/api/beta/x", Headers: c.headers}, c.want)
		})
	}

	// The Authorizer counts what the dry-run rule would have decided, and the allow it served.
	reg := prometheus.NewRegistry()
	a := NewAuthorizer(f.engine, NewMetrics(reg), nil)
	for _, h := range []map[string]string{bearer(f.valid()), bearer(f.valid()), bearer(f.admin()), nil} {
		a.Authorize(context.Background(), FrontGRPC, &Request{Method: "GET", Host: "api.example.com", Path: "/api/beta/x", Headers: h})
	}
	const want = `
# HELP portcullis_dry_run_decisions_total Decisions of dry-run rules as they would have been (the request was allowed), by rule, decision and reason.
# TYPE portcullis_dry_run_decisions_total counter
portcullis_dry_run_decisions_total{decision="allow",reason="ok",rule="beta"} 1
portcullis_dry_run_decisions_total{decision="deny",reason="forbidden",rule="beta"} 2
portcullis_dry_run_decisions_total{decision="deny",reason="no_token",rule="beta"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "portcullis_dry_run_decisions_total"); err != nil {
		t.Error(err)
	}
	for reason, n := range map[string]float64{"ok": 1, "forbidden": 2, "no_token": 1} {
		if got := testutil.ToFloat64(a.metrics.decisions.WithLabelValues(FrontGRPC, "allow", reason)); got != n {
			t.Errorf("decisions{grpc, allow, %s} = %v, want %v", reason, got, n)
		}
	}
}

// TestTokenCacheLookupMetric: the cache hook counts hits and misses on the lookups series.
func TestTokenCacheLookupMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	f := newDecideFixture(t)
	e := NewEngine(Options{Rules: f.engine.rules, Verifier: f.engine.verifier, Sources: f.engine.sources, CacheSize: 4, CacheLookups: m.TokenCacheLookup})
	tok := f.valid()
	for i := 0; i < 3; i++ {
		if d := e.Decide(context.Background(), &Request{Method: "GET", Path: "/api/x", Headers: bearer(tok)}); !d.Allow {
			t.Fatalf("denied: %s %s", d.Reason, d.Detail)
		}
	}
	const want = `
# HELP portcullis_token_cache_lookups_total Verified-token cache lookups, by result (hit, miss).
# TYPE portcullis_token_cache_lookups_total counter
portcullis_token_cache_lookups_total{result="hit"} 2
portcullis_token_cache_lookups_total{result="miss"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "portcullis_token_cache_lookups_total"); err != nil {
		t.Error(err)
	}
}
