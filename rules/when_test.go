package rules

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-authz/portcullis/reason"
)

// checkOne compiles one rule and checks the principal against it on the request, the params
// taken from the rule's patterns as MatchRequest gives them.
func checkOne(t *testing.T, rule string, p *Principal, in *Input) Outcome {
	t.Helper()
	s := mustCompile(t, rule)
	r := s.Rules()[0]
	if in == nil {
		in = &Input{}
	}
	in.Params = r.Params(in.Path)
	return r.Check(p, in)
}

// TestWhenVariables: each variable, as a condition reads it.
func TestWhenVariables(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	p := &Principal{
		Roles:  []string{"user", "billing:admin"},
		Scopes: []string{"orders:read"},
		Claims: map[string]any{"sub": "alice", "tenant_id": "acme", "level": 3.0, "groups": []any{"a", "b"},
			"address": map[string]any{"country": "NZ"}, "email_verified": true},
	}
	in := &Input{
		Method: "get", Host: "API.Example.com:8443", Path: "/tenants/acme/files/a%20b",
		Headers:       map[string]string{"x-tenant": "acme", "authorization": "Bearer secret"},
		Query:         map[string]string{"view": "full"},
		SourceAddress: "10.1.2.3",
		Context:       map[string]string{"portcullis-zone": "internal"},
		Now:           now,
	}
	cases := []struct {
		when string
		want bool
	}{
		{`claims.sub == "alice"`, true},
		{`claims.tenant_id == params.tenant`, true},
		{`claims.level == 3`, true},
		{`claims.level > 3`, false},
		{`"b" in claims.groups`, true},
		{`claims.address.country == "NZ"`, true},
		{`claims.email_verified`, true},
		{`has(claims.missing)`, false},
		{`claims.?missing.orValue("none") == "none"`, true},
		{`"billing:admin" in roles`, true},
		{`roles.exists(r, r.startsWith("billing:"))`, true},
		{`"orders:read" in scopes`, true},
		{`"orders:write" in scopes`, false},
		{`params.tenant == "acme"`, true},
		{`params.file == "a b"`, true}, // percent-decoded
		{`size(params) == 2`, true},
		{`"tenant" in params`, true},
		{`params == {"tenant": "acme", "file": "a b"}`, true},
		{`request.method == "GET"`, true},
		{`request.host == "api.example.com"`, true},
		{`request.path == "/tenants/acme/files/a%20b"`, true},
		{`request.headers["x-tenant"] == claims.tenant_id`, true},
		{`"x-other" in request.headers`, false},
		{`request.query.view == "full"`, true},
		{`source.address == "10.1.2.3"`, true},
		{`cidr("10.0.0.0/8").containsIP(source.address)`, true},
		{`cidr("192.168.0.0/16").containsIP(source.address)`, false},
		{`context["portcullis-zone"] == "internal"`, true},
		{`now == timestamp("2026-05-01T12:00:00Z")`, true},
		{`now < timestamp("2026-01-01T00:00:00Z")`, false},
		{`request.path.lowerAscii().startsWith("/tenants/")`, true}, // ext.Strings
	}
	for _, c := range cases {
		t.Run(c.when, func(t *testing.T) {
			rule := fmt.Sprintf("- name: r\n  match: { paths: [\"/tenants/{tenant}/files/{file}\"] }\n  require: { when: %q }\n", c.when)
			out := checkOne(t, rule, p, in)
			want := reason.OK
			if !c.want {
				want = reason.Forbidden
			}
			if out.Reason != want || len(out.Errors) != 0 {
				t.Fatalf("reason %s, errors %v, missing %q; want %s", out.Reason, out.Errors, out.Missing, want)
			}
		})
	}
}

// TestWhenHostForms: request.host is the host without port or final dot, in lower case; an
// IPv6 address without brackets.
func TestWhenHostForms(t *testing.T) {
	for host, want := range map[string]string{
		"api.example.com":      "api.example.com",
		"API.Example.COM.:443": "api.example.com",
		"[::1]:8080":           "::1",
		"10.0.0.1:80":          "10.0.0.1",
		"":                     "",
	} {
		out := checkOne(t, fmt.Sprintf("- name: r\n  require: { when: 'request.host == %q' }\n", want), &Principal{}, &Input{Host: host})
		if out.Reason != reason.OK {
			t.Errorf("host %q: %s %q", host, out.Reason, out.Missing)
		}
	}
}

// TestWhenMissing: what Outcome.Missing says about a false condition and about one that fails
// to evaluate, with the values it read; secret headers are never shown.
func TestWhenMissing(t *testing.T) {
	p := &Principal{Claims: map[string]any{"tenant_id": "acme", "sub": "bob"}}
	in := &Input{Path: "/tenants/globex/orders/1",
		Headers:       map[string]string{"authorization": "Bearer secret-token", "x-api-key": "k-secret", "x-tenant": "globex"},
		SecretHeaders: []string{"X-Api-Key"}}
	const match = "  match: { paths: [\"/tenants/{tenant}/orders/**\"] }\n"
	cases := []struct {
		name, when string
		missing    string
		errs       []string
	}{
		{"false", `claims.tenant_id == params.tenant`,
			`condition "claims.tenant_id == params.tenant" is false (claims.tenant_id = "acme", params.tenant = "globex")`, nil},
		{"missing key", `claims.org == params.tenant`,
			`condition "claims.org == params.tenant" could not be evaluated: no such key: org (claims.org absent, params.tenant = "globex")`,
			[]string{`rules[0].require.when (rule "r"): no such key: org`}},
		{"missing param", `params.id == claims.sub`,
			`condition "params.id == claims.sub" could not be evaluated: no such key: id (params.id absent, claims.sub = "bob")`,
			[]string{`rules[0].require.when (rule "r"): no such key: id`}},
		{"secret headers", `request.headers.authorization == "x" || request.headers["x-api-key"] == "y" || request.headers["x-tenant"] == "z"`,
			`condition "request.headers.authorization == \"x\" || request.headers[\"x-api-key\"] == \"y\" || request.headers[\"x-tenant\"] == \"z\"" is false (request.headers.authorization = (not shown), request.headers["x-api-key"] = (not shown), request.headers["x-tenant"] = "globex")`, nil},
		{"whole headers", `request.headers.exists(k, k == "x-user")`,
			`condition "request.headers.exists(k, k == \"x-user\")" is false (request.headers has authorization, x-api-key, x-tenant)`, nil},
		{"dyn not boolean", `claims.sub`,
			`condition "claims.sub" could not be evaluated: the expression gave a string, not a boolean (claims.sub = "bob")`,
			[]string{`rules[0].require.when (rule "r"): the expression gave a string, not a boolean`}},
		{"type error", `claims.sub > 3`,
			`condition "claims.sub > 3" could not be evaluated: no such overload (claims.sub = "bob")`,
			[]string{`rules[0].require.when (rule "r"): no such overload`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := checkOne(t, fmt.Sprintf("- name: r\n%s  require: { when: %q }\n", match, c.when), p, in)
			if out.Reason != reason.Forbidden {
				t.Errorf("reason %s, want forbidden", out.Reason)
			}
			if len(out.Missing) != 1 || out.Missing[0] != c.missing {
				t.Errorf("missing\n got: %q\nwant: %q", out.Missing, c.missing)
			}
			var errs []string
			for _, e := range out.Errors {
				errs = append(errs, e.Error())
			}
			if !reflect.DeepEqual(errs, c.errs) {
				t.Errorf("errors\n got: %q\nwant: %q", errs, c.errs)
			}
			for _, m := range out.Missing {
				if strings.Contains(m, "secret") {
					t.Errorf("a secret header's value is shown: %s", m)
				}
			}
		})
	}
}

// TestWhenRuntimeCostLimit: an expression whose estimate passes but whose input is far larger
// than the estimate assumed stops at the run-time cost limit, and denies.
func TestWhenRuntimeCostLimit(t *testing.T) {
	big := make([]any, 300_000)
	for i := range big {
		big[i] = "g"
	}
	out := checkOne(t, "- name: r\n  require: { when: 'claims.groups.all(g, g == \"g\")' }\n",
		&Principal{Claims: map[string]any{"groups": big}}, nil)
	if out.Reason != reason.Forbidden || len(out.Errors) != 1 || !strings.Contains(out.Errors[0].Err.Error(), "cost limit exceeded") {
		t.Fatalf("reason %s, errors %v", out.Reason, out.Errors)
	}
	// The same expression on a small list holds.
	out = checkOne(t, "- name: r\n  require: { when: 'claims.groups.all(g, g == \"g\")' }\n",
		&Principal{Claims: map[string]any{"groups": big[:10]}}, nil)
	if out.Reason != reason.OK {
		t.Fatalf("small list: %s %q", out.Reason, out.Missing)
	}
}

// TestAnyOf: alternatives, nesting, requirements beside any_of, scopes-only alternatives and
// alternatives that fail to evaluate.
func TestAnyOf(t *testing.T) {
	const profile = `- name: profile
  match: { paths: ["/users/{id}/**"] }
  require:
    any_of:
      - { any_roles: [admin] }
      - { when: 'claims.sub == params.id' }
`
	const beside = `- name: r
  match: { paths: ["/users/{id}/**"] }
  require:
    all_roles: [user]
    any_of:
      - { any_roles: [admin] }
      - { when: 'claims.sub == params.id' }
`
	const nested = `- name: r
  require:
    any_of:
      - { any_roles: [admin] }
      - any_of:
          - { all_roles: [billing], claims: { namespace: billing } }
          - { when: 'claims.kind == "service" && claims.namespace == "billing"' }
`
	const scoped = `- name: r
  require:
    any_of:
      - { any_roles: [admin] }
      - { any_roles: [user], scopes: [orders:write] }
`
	const failing = `- name: r
  require:
    any_of:
      - { when: 'claims.org == "x"' }
      - { any_roles: [admin] }
`
	in := &Input{Path: "/users/alice/profile"}
	cases := []struct {
		name, rule string
		p          *Principal
		reason     reason.Code
		missing    []string
		scopes     []string
		errs       int
	}{
		{"admin", profile, &Principal{Roles: []string{"admin"}, Claims: map[string]any{"sub": "bob"}}, reason.OK, nil, nil, 0},
		{"owner", profile, &Principal{Claims: map[string]any{"sub": "alice"}}, reason.OK, nil, nil, 0},
		{"neither", profile, &Principal{Claims: map[string]any{"sub": "bob"}}, reason.Forbidden,
			[]string{`no alternative of require.any_of holds: [0] role "admin"; [1] condition "claims.sub == params.id" is false (claims.sub = "bob", params.id = "alice")`}, nil, 0},
		{"beside unmet", beside, &Principal{Roles: []string{"admin"}}, reason.Forbidden, []string{`role "user"`}, nil, 0},
		{"beside met", beside, &Principal{Roles: []string{"user"}, Claims: map[string]any{"sub": "alice"}}, reason.OK, nil, nil, 0},
		{"nested claims", nested, &Principal{Roles: []string{"billing"}, Claims: map[string]any{"namespace": "billing"}}, reason.OK, nil, nil, 0},
		{"nested when", nested, &Principal{Claims: map[string]any{"kind": "service", "namespace": "billing"}}, reason.OK, nil, nil, 0},
		{"nested none", nested, &Principal{Claims: map[string]any{"kind": "user", "namespace": "billing"}}, reason.Forbidden,
			[]string{`no alternative of require.any_of holds: [0] role "admin"; [1] no alternative of require.any_of[1].any_of holds: [0] role "billing"; [1] condition "claims.kind == \"service\" && claims.namespace == \"billing\"" is false (claims.kind = "user", claims.namespace = "billing")`}, nil, 0},
		{"scopes only", scoped, &Principal{Roles: []string{"user"}}, reason.InsufficientScope,
			[]string{`no alternative of require.any_of holds: [0] role "admin"; [1] scope "orders:write"`}, []string{"orders:write"}, 0},
		{"scopes and role", scoped, &Principal{}, reason.Forbidden,
			[]string{`no alternative of require.any_of holds: [0] role "admin"; [1] role "user", scope "orders:write"`}, nil, 0},
		{"failing alternative, other holds", failing, &Principal{Roles: []string{"admin"}}, reason.OK, nil, nil, 1},
		{"failing alternative, none holds", failing, &Principal{}, reason.Forbidden,
			[]string{`no alternative of require.any_of holds: [0] condition "claims.org == \"x\"" could not be evaluated: no such key: org (claims.org absent); [1] role "admin"`}, nil, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := checkOne(t, c.rule, c.p, in)
			if out.Reason != c.reason || !reflect.DeepEqual(out.Missing, c.missing) || !reflect.DeepEqual(out.MissingScopes, c.scopes) || len(out.Errors) != c.errs {
				t.Errorf("got %s %q scopes %q errors %v\nwant %s %q scopes %q errors %d", out.Reason, out.Missing, out.MissingScopes, out.Errors, c.reason, c.missing, c.scopes, c.errs)
			}
		})
	}
}

// TestAudiences: the token's aud must hold one of require.audiences, else wrong_audience,
// before any other requirement.
func TestAudiences(t *testing.T) {
	const rule = "- name: r\n  require: { all_roles: [admin], audiences: [internal-api, ops] }\n"
	cases := []struct {
		name   string
		aud    any
		roles  []string
		reason reason.Code
	}{
		{"string", "internal-api", []string{"admin"}, reason.OK},
		{"array", []any{"account", "ops"}, []string{"admin"}, reason.OK},
		{"strings", []string{"ops"}, []string{"admin"}, reason.OK},
		{"other", "account", []string{"admin"}, reason.WrongAudience},
		{"other array", []any{"account"}, []string{"admin"}, reason.WrongAudience},
		{"absent", nil, []string{"admin"}, reason.WrongAudience},
		{"wrong audience and role", "account", nil, reason.WrongAudience},
		{"right audience, wrong role", "ops", nil, reason.Forbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			claims := map[string]any{}
			if c.aud != nil {
				claims["aud"] = c.aud
			}
			out := checkOne(t, rule, &Principal{Roles: c.roles, Claims: claims}, nil)
			if out.Reason != c.reason {
				t.Fatalf("reason %s, want %s (%q)", out.Reason, c.reason, out.Missing)
			}
			if c.reason == reason.WrongAudience && !reflect.DeepEqual(out.Missing, []string{`one of audiences "internal-api", "ops"`}) {
				t.Errorf("missing %q", out.Missing)
			}
		})
	}
	if st, _ := reason.Of(reason.WrongAudience); st.Status != 401 || st.Error != "invalid_token" {
		t.Errorf("wrong_audience answers %d %s", st.Status, st.Error)
	}
}

// TestMatchContext: match.context decides which rule is the first match.
func TestMatchContext(t *testing.T) {
	s := mustCompile(t, `
- name: internal-admin
  match: { paths: ["/internal/**"], context: { portcullis-zone: internal, tier: "1" } }
- name: internal-host
  match: { hosts: [api.example.com], paths: ["/internal/**"], context: { portcullis-zone: edge } }
- name: fallback
  match: { paths: ["/**"] }
`)
	cases := []struct {
		host, path string
		ctx        map[string]string
		want       string
	}{
		{"x", "/internal/a", map[string]string{"portcullis-zone": "internal", "tier": "1"}, "internal-admin"},
		{"x", "/internal/a", map[string]string{"portcullis-zone": "internal", "tier": "1", "other": "y"}, "internal-admin"},
		{"x", "/internal/a", map[string]string{"portcullis-zone": "internal"}, "fallback"},
		{"x", "/internal/a", map[string]string{"portcullis-zone": "internal", "tier": "2"}, "fallback"},
		{"x", "/internal/a", nil, "fallback"},
		{"x", "/public", map[string]string{"portcullis-zone": "internal", "tier": "1"}, "fallback"},
		{"api.example.com", "/internal/a", map[string]string{"portcullis-zone": "edge"}, "internal-host"},
		{"other.example.com", "/internal/a", map[string]string{"portcullis-zone": "edge"}, "fallback"},
	}
	for _, c := range cases {
		r, _ := s.MatchRequest(&Input{Host: c.host, Method: "GET", Path: c.path, Context: c.ctx})
		if name(r) != c.want {
			t.Errorf("%s %s %v: %s, want %s", c.host, c.path, c.ctx, name(r), c.want)
		}
	}
	// Match has no context: a rule with match.context never matches through it.
	if r := matchRule(s, "x", "GET", "/internal/a"); name(r) != "fallback" {
		t.Errorf("Match: %s", name(r))
	}
}

// TestMatchRequestParams: the params of the first pattern that matches, only for rules with
// a condition; "**" takes as few segments as it can.
func TestMatchRequestParams(t *testing.T) {
	s := mustCompile(t, `
- name: no-when
  match: { paths: ["/plain/{id}"] }
- name: two
  match: { paths: ["/a/{x}/b", "/a/{y}/{z}"] }
  require: { when: 'true' }
- name: globs
  match: { paths: ["/g/**/{id}/**/end"] }
  require: { when: 'true' }
`)
	cases := []struct {
		path, rule string
		want       []Param
	}{
		{"/plain/7", "no-when", nil},
		{"/a/1/b", "two", []Param{{"x", "1"}}},
		{"/a/1/c", "two", []Param{{"y", "1"}, {"z", "c"}}},
		{"/a/1%2Bx/c/", "two", []Param{{"y", "1%2Bx"}, {"z", "c"}}},
		{"/g/p/q/end/r/end", "globs", []Param{{"id", "p"}}},
	}
	for _, c := range cases {
		r, ps := s.MatchRequest(&Input{Method: "GET", Path: c.path})
		var got []Param
		for i := 0; i < ps.Len(); i++ {
			got = append(got, ps.At(i))
		}
		if name(r) != c.rule || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %s %v, want %s %v", c.path, name(r), got, c.rule, c.want)
		}
	}
	ps := s.Lookup("two").Params("/a/1%2Bx/c")
	if v, ok := ps.Get("y"); !ok || v != "1+x" {
		t.Errorf("Get(y) = %q %v", v, ok)
	}
	if _, ok := ps.Get("x"); ok {
		t.Error("Get(x) found a parameter of another pattern")
	}
	if ps := s.Lookup("two").Params("/elsewhere"); ps.Len() != 0 {
		t.Errorf("Params of a path no pattern matches: %d", ps.Len())
	}
}

// TestManyParams: more params than Params holds inline.
func TestManyParams(t *testing.T) {
	var pat, path strings.Builder
	var want []string
	for i := 0; i < 12; i++ {
		fmt.Fprintf(&pat, "/{p%d}", i)
		fmt.Fprintf(&path, "/v%d", i)
		want = append(want, fmt.Sprintf(`params.p%d == "v%d"`, i, i))
	}
	rule := fmt.Sprintf("- name: r\n  match: { paths: [%q] }\n  require: { when: %q }\n", pat.String(), strings.Join(want, " && "))
	if out := checkOne(t, rule, &Principal{}, &Input{Path: path.String()}); out.Reason != reason.OK {
		t.Fatalf("%s %q", out.Reason, out.Missing)
	}
}

// TestCheckNilInput: a nil input reads as an empty request; a condition on it fails closed.
func TestCheckNilInput(t *testing.T) {
	s := mustCompile(t, "- name: r\n  require: { when: 'request.headers[\"x\"] == \"y\"' }\n")
	out := s.Rules()[0].Check(&Principal{}, nil)
	if out.Reason != reason.Forbidden || len(out.Errors) != 1 {
		t.Fatalf("%s %v", out.Reason, out.Errors)
	}
	var ce ConditionError
	if !errors.As(error(out.Errors[0]), &ce) || ce.Field != "rules[0].require.when" || ce.Rule != "r" {
		t.Errorf("%+v", out.Errors[0])
	}
}
