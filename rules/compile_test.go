package rules

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-authz/portcullis/reason"
)

// decodeSpecs decodes a YAML list of rules strictly, as the config package does.
func decodeSpecs(t testing.TB, y string) []Spec {
	t.Helper()
	var specs []Spec
	dec := yaml.NewDecoder(strings.NewReader(y))
	dec.KnownFields(true)
	if err := dec.Decode(&specs); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return specs
}

func mustCompile(t testing.TB, y string) *Set {
	t.Helper()
	s, err := Compile(decodeSpecs(t, y))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return s
}

// TestCompileErrors compiles one fixture per validation rule (testdata/bad) and asserts the
// exact message.
func TestCompileErrors(t *testing.T) {
	cases := map[string]string{
		"name_missing":         `rules[0].name: missing; every rule needs a unique name (letters, digits, "-", "_", ".", ":"), used in logs and Envoy metadata`,
		"name_charset":         `rules[0].name: "my rule" may use only letters, digits, "-", "_", "." and ":"`,
		"name_too_long":        `rules[0].name: longer than 128 bytes; use a shorter name`,
		"name_twice":           `rules[1].name: "admin" is already used by rules[0]`,
		"hosts_empty_list":     `rules[0].match.hosts: empty list; omit hosts to match every host`,
		"host_empty":           `rules[0].match.hosts[0]: empty host; remove it, or omit hosts to match every host`,
		"host_star":            `rules[0].match.hosts[0]: "*" matches every host; omit hosts instead`,
		"host_port":            `rules[0].match.hosts[0]: "api.example.com:443" has a port; hosts are compared without the port: write "api.example.com"`,
		"host_ipv6_port":       `rules[0].match.hosts[0]: "[::1]:8080" has a port; hosts are compared without the port: write "[::1]"`,
		"host_wildcard_middle": `rules[0].match.hosts[0]: "api.*.com": a wildcard is allowed only as the whole leftmost label, as in "*.example.com"`,
		"host_not_ascii":       `rules[0].match.hosts[0]: "bücher.example": not ASCII; write the IDNA form ("xn--...")`,
		// U+212A, the Kelvin sign, which strings.ToLower folds to "k".
		"host_kelvin":              `rules[0].match.hosts[0]: "Kube.example.com": not ASCII; write the IDNA form ("xn--...")`,
		"host_bad_char":            `rules[0].match.hosts[0]: "api/example.com": "/" is not allowed in a host name`,
		"host_twice":               `rules[0].match.hosts[1]: "API.example.com." is the same host as hosts[0]; remove one`,
		"methods_empty_list":       `rules[0].match.methods: empty list; omit methods to match every method`,
		"method_lower":             `rules[0].match.methods[0]: "get" must be upper case: write "GET"`,
		"method_invalid":           `rules[0].match.methods[0]: "GE T" is not an HTTP method (a method is a token such as GET or PROPFIND)`,
		"method_twice":             `rules[0].match.methods[2]: "GET" is already listed at methods[0]; remove one`,
		"paths_empty_list":         `rules[0].match.paths: empty list; omit paths (or write "/**") to match every path`,
		"path_empty":               `rules[0].match.paths[0]: empty pattern; write "/" for the root or "/**" for every path`,
		"path_relative":            `rules[0].match.paths[0]: "api/x" must start with "/"`,
		"path_query":               `rules[0].match.paths[0]: "/api?x=1": patterns match the path only; remove the query or fragment`,
		"path_trailing_slash":      `rules[0].match.paths[0]: "/api/": a trailing slash is ignored when matching; write "/api"`,
		"path_empty_segment":       `rules[0].match.paths[0]: "/api//x" has an empty, "." or ".." segment, which request paths never have once normalised; write "/api/x"`,
		"path_dot_segment":         `rules[0].match.paths[0]: "/api/v1/../x/./y" has an empty, "." or ".." segment, which request paths never have once normalised; write "/api/x/y"`,
		"path_mixed_segment":       `rules[0].match.paths[0]: "/api/v*": segment "v*" mixes text and a wildcard; a wildcard stands for whole segments: "*" or "{name}" for one, "**" for any number`,
		"path_double_globstar":     `rules[0].match.paths[0]: "/api/**/**": "**" twice in a row; one "**" already matches any number of segments`,
		"path_bad_param":           `rules[0].match.paths[0]: "/users/{user-id}": "user-id" is not a parameter name (letters, digits and "_", not starting with a digit)`,
		"path_param_twice":         `rules[0].match.paths[0]: "/users/{id}/friends/{id}": {id} appears twice; give each parameter its own name`,
		"path_encoded_slash":       `rules[0].match.paths[0]: "/files/a%2Fb": encoded "/" (%2F) is read as a separator by some servers and not by others; requests with it are refused (400), so the pattern would never match`,
		"path_invalid_escape":      `rules[0].match.paths[0]: "/files/100%": invalid percent-escape ("%" must be followed by two hex digits); requests with it are refused (400), so the pattern would never match`,
		"path_not_utf8":            `rules[0].match.paths[0]: "/files/%C0%AE/*": bytes that are not valid UTF-8 once decoded (overlong form, surrogate, code point above U+10FFFF, stray or missing continuation byte), which some servers decode anyway ("%C0%AE" as "."); requests with it are refused (400), so the pattern would never match`,
		"path_matrix_param":        `rules[0].match.paths[0]: "/api/admin;v=2/**": segment "admin;v=2" has a path parameter (";"); requests with one are refused (400), or stripped before matching with paths.matrix_parameters: strip, so the pattern would never match (write the segment without it, or "%3B" for a ";" that is part of the name)`,
		"path_twice":               `rules[0].match.paths[1]: "/users/{id}" matches the same paths as paths[0]; remove one`,
		"public_with_require":      `rules[0].require: a public rule lets requests through without a token, so it cannot require anything; remove require, or public: true`,
		"any_roles_empty_list":     `rules[0].require.any_roles: empty list; omit it, or list at least one role`,
		"role_empty":               `rules[0].require.all_roles[0]: empty role; remove it`,
		"role_padded":              `rules[0].require.any_roles[0]: "admin " has leading or trailing spaces; write "admin"`,
		"role_twice":               `rules[0].require.all_roles[1]: "admin" is already listed at all_roles[0]; remove one`,
		"scope_with_space":         `rules[0].require.scopes[0]: "orders:read orders:write" is not one scope (a token's scopes are separated by spaces); list each scope on its own`,
		"claims_empty":             `rules[0].require.claims: empty; omit claims, or list the claims and their values`,
		"claim_bad_path":           `rules[0].require.claims.a..b: "a..b" is not a claim name or dotted path (write e.g. email_verified or realm_access.roles)`,
		"claim_list_value":         `rules[0].require.claims.groups: a list is not a claim value; write one string, number or boolean (an array claim matches when it contains it)`,
		"claim_map_value":          `rules[0].require.claims.address: a mapping is not a claim value; for a nested claim write a dotted key such as "address.country"`,
		"claim_null":               `rules[0].require.claims.email_verified: no value; write the value the claim must equal (a string, number or boolean)`,
		"claim_nan":                `rules[0].require.claims.level: NaN and infinities never equal a claim; write a finite number`,
		"claim_timestamp":          `rules[0].require.claims.since: a timestamp is not a claim value; quote it to compare it as a string ("2024-01-02")`,
		"any_of_audiences":         `rules[0].require.any_of[1].audiences: audiences apply to the whole rule; move them up to require`,
		"any_of_active":            `rules[0].require.any_of[1].active: active applies to the whole rule; move it up to require`,
		"public_with_active":       `rules[0].require: a public rule lets requests through without a token, so it cannot require anything; remove require, or public: true`,
		"any_of_constrained":       `rules[0].require.any_of[1].sender_constrained: sender_constrained applies to the whole rule; move it up to require`,
		"public_constrained":       `rules[0].require: a public rule lets requests through without a token, so it cannot require anything; remove require, or public: true`,
		"any_of_empty_alternative": `rules[0].require.any_of[1]: empty alternative, which any token meets; remove it, or list its requirements`,
		"any_of_empty_list":        `rules[0].require.any_of: empty list; omit it, or list the alternatives`,
		"any_of_nested_bad_role":   `rules[0].require.any_of[0].any_of[1].all_roles[0]: empty role; remove it`,
		"audiences_empty_list":     `rules[0].require.audiences: empty list; omit it, or list at least one audience`,
		"context_empty":            `rules[0].match.context: empty; omit context, or list the context extensions and their values`,
		"context_rule_extension":   `rules[0].match.context.portcullis-rule: "portcullis-rule" names the rule to apply directly and is not matched on; remove it here`,
		"public_with_when":         `rules[0].require: a public rule lets requests through without a token, so it cannot require anything; remove require, or public: true`,
		"when_bad_cidr":            `rules[0].require.when: column 6: invalid cidr argument: CIDR "10.0.0/8" parse error during conversion from string: netip.ParsePrefix("10.0.0/8"): ParseAddr("10.0.0"): IPv4 address too short`,
		"when_blank":               `rules[0].require.when: empty expression; omit when, or write a CEL expression such as claims.tenant_id == params.tenant`,
		"when_cost":                `rules[0].require.when: estimated cost 228713306115 exceeds the limit of 100000 (assuming lists and maps of up to 64 entries and strings of up to 1024 characters); simplify it, for example avoid nested loops over lists`,
		"when_in_any_of":           `rules[1].require.any_of[1].when: column 27: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}`,
		"when_multiline":           `rules[0].require.when: line 2, column 1: undeclared reference to 'request' (in container ''); the variables are claims, roles, scopes, params, request.method, request.host, request.path, request.headers, request.query, source.address, context, now`,
		"when_not_boolean":         `rules[0].require.when: the expression gives a string, not a boolean; compare it (for example request.method == "GET")`,
		"when_syntax":              `rules[0].require.when: column 37: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}`,
		"when_type":                `rules[0].require.when: column 15: found no matching overload for '_+_' applied to '(string, int)'`,
		"when_unknown_variable":    `rules[0].require.when: column 1: undeclared reference to 'claim' (in container ''); the variables are claims, roles, scopes, params, request.method, request.host, request.path, request.headers, request.query, source.address, context, now`,
	}
	files, err := filepath.Glob(filepath.Join("testdata", "bad", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		if _, ok := cases[strings.TrimSuffix(filepath.Base(f), ".yaml")]; !ok {
			t.Errorf("fixture %s has no expected message in this table", f)
		}
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "bad", name+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			set, err := Compile(decodeSpecs(t, string(b)))
			if err == nil {
				t.Fatal("compiled without error")
			}
			if set != nil {
				t.Error("a Set came back with the error")
			}
			if err.Error() != want {
				t.Errorf("error\n got: %s\nwant: %s", err, want)
			}
		})
	}
}

// TestCompileReportsEveryProblem: all problems, of all rules, in order, one per joined error.
func TestCompileReportsEveryProblem(t *testing.T) {
	_, err := Compile([]Spec{
		{Name: "a b", Match: MatchSpec{Paths: []string{"x"}, Methods: []string{"get"}}},
		{Name: "ok", Match: MatchSpec{Hosts: []string{"h:1"}}, Public: true, Require: RequireSpec{Scopes: []string{"s"}}},
		{Name: "ok"},
	})
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		`rules[0].name: "a b" may use only letters, digits, "-", "_", "." and ":"`,
		`rules[0].match.methods[0]: "get" must be upper case: write "GET"`,
		`rules[0].match.paths[0]: "x" must start with "/"`,
		`rules[1].match.hosts[0]: "h:1" has a port; hosts are compared without the port: write "h"`,
		`rules[1].require: a public rule lets requests through without a token, so it cannot require anything; remove require, or public: true`,
		`rules[2].name: "ok" is already used by rules[1]`,
	}
	var got []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		got = append(got, e.Error())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems\n got: %q\nwant: %q", got, want)
	}
	if err.Error() != strings.Join(want, "\n") {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestCompileAccepts(t *testing.T) {
	s := mustCompile(t, `
- name: all-spellings.ok:1
  match:
    hosts: ["API.Example.com.", "*.Internal.example.com", "10.0.0.1", "[::1]", "2001:db8::1"]
    methods: [GET, PROPFIND, PURGE, CUSTOM-VERB]
    paths: ["/", "/**", "/a/**/b/**/c", "/files/a%20b", "/files/caf%c3%a9", "/files/é", "/~user/{id}/*", "/a/%7Ex"]
  dry_run: true
  require:
    any_roles: [admin]
    all_roles: ["orders-api:writer", "with space"]
    scopes: ["orders:write"]
    claims: { email_verified: true, level: 3, ratio: 0.5, tier: gold, "https://example.com/claims.tier": x }
`)
	r := s.Lookup("all-spellings.ok:1")
	if r == nil || !r.DryRun() || r.Public() {
		t.Fatalf("rule %+v", r)
	}
	var pats []string
	for _, p := range r.paths {
		pats = append(pats, p.key())
	}
	// Literal segments are stored in normal form; "{id}" is "*".
	want := []string{"/", "/**", "/a/**/b/**/c", "/files/a%20b", "/files/caf%C3%A9", "/files/%C3%A9", "/~user/*/*", "/a/~x"}
	if !reflect.DeepEqual(pats, want) {
		t.Errorf("patterns %q, want %q", pats, want)
	}
	var hosts []string
	for _, h := range r.hosts {
		hosts = append(hosts, h.key())
	}
	if want := []string{"api.example.com", "*.internal.example.com", "10.0.0.1", "::1", "2001:db8::1"}; !reflect.DeepEqual(hosts, want) {
		t.Errorf("hosts %q, want %q", hosts, want)
	}
	if got, want := s.Warnings(), []string{`rules[0] "all-spellings.ok:1": method "CUSTOM-VERB" is not a registered HTTP method; check its spelling`}; !reflect.DeepEqual(got, want) {
		t.Errorf("warnings %q, want %q", got, want)
	}
}

func TestCompileEmpty(t *testing.T) {
	for _, specs := range [][]Spec{nil, {}} {
		s, err := Compile(specs)
		if err != nil || s.Len() != 0 || matchRule(s, "h", "GET", "/") != nil || len(s.Warnings()) != 0 {
			t.Errorf("Compile(%v) = %v, %v", specs, s, err)
		}
	}
	var nilSet *Set
	if nilSet.Len() != 0 || matchRule(nilSet, "h", "GET", "/") != nil || nilSet.Lookup("a") != nil || nilSet.Rules() != nil || nilSet.Warnings() != nil {
		t.Error("a nil Set must hold no rules")
	}
}

func TestSetAccessors(t *testing.T) {
	specs := decodeSpecs(t, `
- name: health
  match: { paths: ["/healthz"], methods: [GET] }
  public: true
- name: admin
  match: { hosts: [api.example.com], paths: ["/admin/**"] }
  require: { any_roles: [admin], claims: { tier: gold } }
  dry_run: true
`)
	s, err := Compile(specs)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 {
		t.Errorf("Len = %d", s.Len())
	}
	rs := s.Rules()
	if len(rs) != 2 || rs[0].Name() != "health" || rs[1].Name() != "admin" {
		t.Fatalf("Rules = %v", rs)
	}
	if !rs[0].Public() || rs[0].DryRun() || rs[1].Public() || !rs[1].DryRun() {
		t.Error("Public/DryRun")
	}
	if s.Lookup("admin") != rs[1] || s.Lookup("Admin") != nil || s.Lookup("") != nil {
		t.Error("Lookup")
	}
	if !reflect.DeepEqual(rs[1].Spec(), specs[1]) {
		t.Errorf("Spec = %+v, want %+v", rs[1].Spec(), specs[1])
	}
	// Neither the caller's specs nor a returned Spec or slice can change the compiled set.
	specs[1].Match.Paths[0] = "/other/**"
	specs[1].Require.Claims["tier"] = "bronze"
	sp := rs[1].Spec()
	sp.Require.AnyRoles[0] = "nobody"
	rs[0] = nil
	if got := s.Rules()[1].Spec(); got.Match.Paths[0] != "/admin/**" || got.Require.Claims["tier"] != "gold" || got.Require.AnyRoles[0] != "admin" {
		t.Errorf("compiled spec changed: %+v", got)
	}
	if s.Rules()[0] == nil || matchRule(s, "api.example.com", "GET", "/admin/x") != s.Lookup("admin") {
		t.Error("compiled set changed")
	}
	if out := s.Lookup("admin").Check(&Principal{Roles: []string{"admin"}, Claims: map[string]any{"tier": "gold"}}, nil); out.Reason != reason.OK {
		t.Errorf("Check = %+v", out)
	}
}

func TestCompileErrorsUnwrap(t *testing.T) {
	_, err := Compile([]Spec{{Name: "a", Match: MatchSpec{Paths: []string{"/a%2F"}}}})
	var j interface{ Unwrap() []error }
	if !errors.As(err, &j) || len(j.Unwrap()) != 1 {
		t.Fatalf("want a joined error, got %#v", err)
	}
}
