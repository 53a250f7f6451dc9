package rules

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/portcullis-authz/portcullis/reason"
)

func TestCheck(t *testing.T) {
	s := mustCompile(t, `
- name: any
  require: { any_roles: [admin, ops] }
- name: any-one
  require: { any_roles: [admin] }
- name: all
  require: { all_roles: ["orders-api:writer", user] }
- name: scopes
  require: { all_roles: [user], scopes: ["orders:write", "orders:read"] }
- name: claims
  require: { claims: { email_verified: true, "realm_access.roles": admin, level: 3, tenant: acme } }
- name: numbers
  require: { claims: { ratio: 0.5, big: 1e21, neg: -2 } }
- name: dotted-name
  require: { claims: { "https://example.com/tier": gold, "https://example.com/org.unit": sales } }
- name: none
- name: everything
  require: { any_roles: [admin], scopes: [s], claims: { tenant: acme } }
`)
	roles := func(r ...string) *Principal { return &Principal{Roles: r} }
	claims := func(c map[string]any) *Principal { return &Principal{Claims: c} }
	good := map[string]any{"email_verified": true, "realm_access": map[string]any{"roles": []any{"user", "admin"}}, "level": 3.0, "tenant": "acme"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range good {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name    string
		rule    string
		p       *Principal
		verdict reason.Code
		missing []string
		scopes  []string
	}{
		{"any: one of them", "any", roles("user", "ops"), reason.OK, nil, nil},
		{"any: none", "any", roles("user"), reason.Forbidden, []string{`one of roles "admin", "ops"`}, nil},
		{"any: no roles at all", "any", roles(), reason.Forbidden, []string{`one of roles "admin", "ops"`}, nil},
		{"any: single role text", "any-one", roles("Admin"), reason.Forbidden, []string{`role "admin"`}, nil},
		{"all: every one", "all", roles("user", "x", "orders-api:writer"), reason.OK, nil, nil},
		{"all: one missing", "all", roles("user"), reason.Forbidden, []string{`role "orders-api:writer"`}, nil},
		{"all: client role is not the realm role", "all", roles("writer", "user"), reason.Forbidden, []string{`role "orders-api:writer"`}, nil},
		{"all: both missing", "all", roles(), reason.Forbidden, []string{`role "orders-api:writer"`, `role "user"`}, nil},
		{"scopes: all granted", "scopes", &Principal{Roles: []string{"user"}, Scopes: []string{"orders:read", "orders:write"}}, reason.OK, nil, nil},
		{"scopes: one missing", "scopes", &Principal{Roles: []string{"user"}, Scopes: []string{"orders:read"}}, reason.InsufficientScope, []string{`scope "orders:write"`}, []string{"orders:write"}},
		{"scopes: both missing", "scopes", roles("user"), reason.InsufficientScope, []string{`scope "orders:write"`, `scope "orders:read"`}, []string{"orders:write", "orders:read"}},
		{"scopes: role missing too is forbidden", "scopes", &Principal{Scopes: []string{"orders:read"}}, reason.Forbidden, []string{`role "user"`, `scope "orders:write"`}, []string{"orders:write"}},
		{"claims: all equal", "claims", claims(good), reason.OK, nil, nil},
		{"claims: bool is not the string", "claims", claims(with("email_verified", "true")), reason.Forbidden, []string{"claim email_verified = true"}, nil},
		{"claims: false", "claims", claims(with("email_verified", false)), reason.Forbidden, []string{"claim email_verified = true"}, nil},
		{"claims: array lacks the value", "claims", claims(with("realm_access", map[string]any{"roles": []any{"user"}})), reason.Forbidden, []string{`claim realm_access.roles = "admin"`}, nil},
		{"claims: nested scalar", "claims", claims(with("realm_access", map[string]any{"roles": "admin"})), reason.OK, nil, nil},
		{"claims: nested not an object", "claims", claims(with("realm_access", "admin")), reason.Forbidden, []string{`claim realm_access.roles = "admin"`}, nil},
		{"claims: literal dotted key", "claims", claims(with("realm_access.roles", "admin")), reason.OK, nil, nil},
		{"claims: number differs", "claims", claims(with("level", 3.5)), reason.Forbidden, []string{"claim level = 3"}, nil},
		{"claims: number as string", "claims", claims(with("level", "3")), reason.Forbidden, []string{"claim level = 3"}, nil},
		{"claims: json.Number", "claims", claims(with("level", json.Number("3.0"))), reason.OK, nil, nil},
		{"claims: int", "claims", claims(with("level", 3)), reason.OK, nil, nil},
		{"claims: number in array", "claims", claims(with("level", []any{1.0, 3.0})), reason.OK, nil, nil},
		{"claims: missing", "claims", claims(with("tenant", nil)), reason.Forbidden, []string{`claim tenant = "acme"`}, nil},
		{"claims: string case matters", "claims", claims(with("tenant", "ACME")), reason.Forbidden, []string{`claim tenant = "acme"`}, nil},
		{"claims: []string array", "claims", claims(with("tenant", []string{"x", "acme"})), reason.OK, nil, nil},
		{"claims: no claims", "claims", claims(nil), reason.Forbidden, []string{`claim email_verified = true`, `claim level = 3`, `claim realm_access.roles = "admin"`, `claim tenant = "acme"`}, nil},
		{"numbers: equal", "numbers", claims(map[string]any{"ratio": 0.5, "big": 1e21, "neg": -2.0}), reason.OK, nil, nil},
		{"numbers: texts", "numbers", claims(nil), reason.Forbidden, []string{"claim big = 1e+21", "claim neg = -2", "claim ratio = 0.5"}, nil},
		{"dotted name: whole key, then path", "dotted-name", claims(map[string]any{"https://example.com/tier": "gold", "https://example.com/org": map[string]any{"unit": "sales"}}), reason.OK, nil, nil},
		{"dotted name: split at another dot", "dotted-name", claims(map[string]any{"https://example": map[string]any{"com/tier": "gold"}}), reason.Forbidden, []string{`claim https://example.com/org.unit = "sales"`}, nil},
		{"none: any principal", "none", &Principal{}, reason.OK, nil, nil},
		{"everything: all unmet", "everything", &Principal{}, reason.Forbidden, []string{`role "admin"`, `scope "s"`, `claim tenant = "acme"`}, []string{"s"}},
		{"nil principal", "none", nil, reason.Forbidden, []string{"an authenticated principal"}, nil},
	}
	for _, c := range cases {
		out := s.Lookup(c.rule).Check(c.p, nil)
		if out.Reason != c.verdict || !reflect.DeepEqual(out.Missing, c.missing) || !reflect.DeepEqual(out.MissingScopes, c.scopes) {
			t.Errorf("%s: got %v %q %q, want %v %q %q", c.name, out.Reason, out.Missing, out.MissingScopes, c.verdict, c.missing, c.scopes)
		}
	}
}

func TestCheckDoesNotAllocateWhenMet(t *testing.T) {
	s := mustCompile(t, `
- name: r
  require: { any_roles: [a, b], all_roles: [c], scopes: [s], claims: { "x.y": 1, z: true } }
`)
	p := &Principal{Roles: []string{"c", "b"}, Scopes: []string{"s"}, Claims: map[string]any{"x": map[string]any{"y": 1.0}, "z": []any{false, true}}}
	r := s.Lookup("r")
	if n := testing.AllocsPerRun(100, func() { r.Check(p, nil) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// TestClaimPaths: each claim requirement's path once, in rule order.
func TestClaimPaths(t *testing.T) {
	s, err := Compile([]Spec{
		{Name: "a", Require: RequireSpec{Claims: map[string]any{"email_verified": true, "realm_access.roles": "admin"}}},
		{Name: "b", Require: RequireSpec{Claims: map[string]any{"email_verified": true, "https://example.com/tenant": "acme"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range s.ClaimPaths() {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != "email_verified realm_access.roles https://example.com/tenant" {
		t.Errorf("ClaimPaths = %s", got)
	}
	var nilSet *Set
	if nilSet.ClaimPaths() != nil {
		t.Error("a nil set reads claims")
	}
}

// TestClaimPathsKeepWhatCheckReads: claims reduced to the top-level claims of ClaimPaths (what a
// verifier keeps) meet the same requirements as the whole claims, for names with several dots too.
func TestClaimPathsKeepWhatCheckReads(t *testing.T) {
	s, err := Compile([]Spec{{Name: "r", Require: RequireSpec{Claims: map[string]any{
		"https://example.com/org.unit": "sales", "realm_access.tier.level": 2, "kubernetes.io.namespace": "shop",
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]any{
		"https://example.com/org": map[string]any{"unit": "sales"},
		"realm_access":            map[string]any{"tier": map[string]any{"level": 2.0}},
		"kubernetes.io":           map[string]any{"namespace": "shop"},
		"unrelated":               "x",
	}
	kept := map[string]any{}
	for _, p := range s.ClaimPaths() {
		for _, name := range p.TopLevel() {
			if v, ok := all[name]; ok {
				kept[name] = v
			}
		}
	}
	r := s.Lookup("r")
	for name, claims := range map[string]map[string]any{"all claims": all, "kept claims": kept} {
		if out := r.Check(&Principal{Claims: claims}, nil); out.Reason != reason.OK {
			t.Errorf("%s: %v, missing %v", name, out.Reason, out.Missing)
		}
	}
	if _, ok := kept["unrelated"]; ok {
		t.Error("a claim no rule reads was kept")
	}
}

// TestClaimPathsOfConditions: the claims a `when` selects by constant keys, and aud for
// require.audiences, are kept; a `when` that reads the claims otherwise keeps them all.
func TestClaimPathsOfConditions(t *testing.T) {
	cases := []struct {
		name, rules string
		paths       string
		all         bool
	}{
		{"selects", `
- name: a
  require:
    claims: { email_verified: true }
    when: 'claims.tenant_id == params.t && claims["https://example.com/org"].unit == "x" && has(claims.team)'
    any_of:
      - { when: 'claims.sub == "alice"' }
      - { any_roles: [admin] }
- name: b
  require: { audiences: [internal-api], when: 'claims.tenant_id == "acme"' }
`, "email_verified tenant_id https://example.com/org team sub aud", false},
		{"whole map", `
- name: a
  require: { when: '"tenant_id" in claims' }
`, "", true},
		{"computed key", `
- name: a
  require: { when: 'claims[request.headers["x-claim"]] == "x"' }
`, "", true},
		{"comprehension", `
- name: a
  require: { when: 'claims.exists(k, k.startsWith("x"))' }
`, "", true},
		{"no conditions", `
- name: a
  require: { claims: { level: 3 } }
`, "level", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustCompile(t, c.rules)
			var got []string
			for _, p := range s.ClaimPaths() {
				got = append(got, p.String())
			}
			if strings.Join(got, " ") != c.paths || s.ReadsAllClaims() != c.all {
				t.Errorf("ClaimPaths %q, ReadsAllClaims %v; want %q, %v", got, s.ReadsAllClaims(), c.paths, c.all)
			}
		})
	}
}
