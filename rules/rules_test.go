package rules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func mustCompile(t testing.TB, y string) *Set {
	t.Helper()
	var specs []Spec
	dec := yaml.NewDecoder(strings.NewReader(y))
	dec.KnownFields(true)
	if err := dec.Decode(&specs); err != nil {
		t.Fatal(err)
	}
	s, err := Compile(specs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCompileErrors compiles one fixture per validation rule and asserts the exact message.
func TestCompileErrors(t *testing.T) {
	cases := []struct{ file, want string }{
		{"claim_bad_path", "rules[0].require.claims.a..b: \"a..b\" is not a claim path (write e.g. email_verified or realm_access.roles)"},
		{"claim_list_value", "rules[0].require.claims.groups: must be a string, number or boolean, not a list or mapping"},
		{"claim_null", "rules[0].require.claims.email_verified: no value given; write the value the claim must have"},
		{"host_empty", "rules[0].match.hosts[0]: empty host"},
		{"host_port", "rules[0].match.hosts[0]: \"api.example.com:443\": write the host without a port (ports are ignored when matching)"},
		{"host_wildcard_middle", "rules[0].match.hosts[0]: \"api.*.com\": a wildcard is allowed only as the whole first label (*.example.com)"},
		{"method_lower", "rules[0].match.methods[0]: \"get\" must be upper case (GET)"},
		{"method_unknown", "rules[0].match.methods[0]: \"FETCH\" is not an HTTP method; use GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, CONNECT or TRACE"},
		{"name_charset", "rules[0].name: \"my rule\" may use only letters, digits and - _ . :"},
		{"name_missing", "rules[0].name: every rule needs a name (it appears in logs, metrics and Envoy metadata)"},
		{"name_twice", "rules[1].name: \"a\" is already used by rules[0]"},
		{"path_double_globstar", "rules[0].match.paths[0]: \"/api/**/**\": two ** in a row mean the same as one"},
		{"path_encoded_slash", "rules[0].match.paths[0]: \"/a%2Fb\": path: encoded \"/\" in path"},
		{"path_mixed_segment", "rules[0].match.paths[0]: \"/api/v*\": segment \"v*\" mixes text and wildcards; a segment is literal, *, ** or {name}"},
		{"path_not_normal", "rules[0].match.paths[0]: \"/api//x\" is not in normal form; write \"/api/x\""},
		{"path_query", "rules[0].match.paths[0]: \"/api?x=1\": patterns match the path only; remove the query or fragment"},
		{"path_relative", "rules[0].match.paths[0]: \"api/x\" must start with \"/\""},
		{"path_trailing_slash", "rules[0].match.paths[0]: \"/api/\": a trailing slash is ignored when matching; write \"/api\""},
		{"public_with_require", "rules[0]: a public rule cannot have requirements; remove public: true or the require block"},
		{"role_empty", "rules[0].require.all_roles[0]: empty role"},
		{"scope_with_space", "rules[0].require.scopes[0]: \"a b\" is not a single scope"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.file+".yaml"] = true
		t.Run(c.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "bad", c.file+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var specs []Spec
			dec := yaml.NewDecoder(strings.NewReader(string(b)))
			dec.KnownFields(true)
			if err := dec.Decode(&specs); err != nil {
				t.Fatal(err)
			}
			_, err = Compile(specs)
			if err == nil {
				t.Fatal("compiled without error")
			}
			if err.Error() != c.want {
				t.Errorf("error\n got: %s\nwant: %s", err, c.want)
			}
		})
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "bad", "*.yaml"))
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("fixture %s has no expected message", f)
		}
	}
}

func TestCompileReportsEveryProblem(t *testing.T) {
	_, err := Compile([]Spec{{Name: "a b", Match: MatchSpec{Paths: []string{"x"}, Methods: []string{"get"}}}})
	if err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Errorf("want 3 joined problems, got %v", err)
	}
}

func TestMatch(t *testing.T) {
	s := mustCompile(t, `
- name: health
  match: { paths: ["/healthz"], methods: [GET] }
- name: admin
  match: { hosts: ["api.example.com"], paths: ["/api/admin/**"] }
- name: wildcard-host
  match: { hosts: ["*.internal.example.com"], paths: ["/api/admin/**"] }
- name: orders-write
  match: { paths: ["/api/orders/*"], methods: [POST, PUT, DELETE] }
- name: edit
  match: { paths: ["/api/**/edit"] }
- name: user-item
  match: { paths: ["/users/{id}/items/{item}"] }
- name: api
  match: { paths: ["/api/**"] }
- name: root
  match: { paths: ["/"] }
`)
	cases := []struct {
		host, method, path, want string
	}{
		{"h", "GET", "/healthz", "health"},
		{"h", "HEAD", "/healthz", ""},
		{"h", "GET", "/healthz/", "health"},
		{"h", "GET", "/healthz/x", ""},
		{"api.example.com", "GET", "/api/admin/users", "admin"},
		{"API.Example.COM:8443", "GET", "/api/admin", "admin"},
		{"api.example.com.", "GET", "/api/admin/x/y/z", "admin"},
		{"other.example.com", "GET", "/api/admin/users", "api"},
		{"a.internal.example.com", "DELETE", "/api/admin/x", "wildcard-host"},
		{"a.b.internal.example.com:80", "GET", "/api/admin/x", "wildcard-host"},
		{"internal.example.com", "GET", "/api/admin/x", "api"},
		{"[::1]:8080", "GET", "/api/admin/x", "api"},
		{"h", "POST", "/api/orders/7", "orders-write"},
		{"h", "POST", "/api/orders/7/", "orders-write"},
		{"h", "GET", "/api/orders/7", "api"},
		{"h", "POST", "/api/orders", "api"},
		{"h", "POST", "/api/orders/7/lines", "api"},
		{"h", "PURGE", "/api/orders/7", "api"},
		{"h", "GET", "/api/edit", "edit"},
		{"h", "GET", "/api/a/b/c/edit", "edit"},
		{"h", "GET", "/api/a/b/c/edit/more", "api"},
		{"h", "GET", "/users/42/items/7", "user-item"},
		{"h", "GET", "/users/42/items", ""},
		{"h", "GET", "/users/42/items/7/8", ""},
		{"h", "GET", "/api", "api"},
		{"h", "GET", "/api/", "api"},
		{"h", "GET", "/apix", ""},
		{"h", "GET", "/", "root"},
		{"h", "GET", "/other", ""},
	}
	for _, c := range cases {
		r := s.Match(c.host, c.method, c.path)
		got := ""
		if r != nil {
			got = r.Name()
		}
		if got != c.want {
			t.Errorf("Match(%q, %q, %q) = %q, want %q", c.host, c.method, c.path, got, c.want)
		}
	}
	if s.Lookup("edit") == nil || s.Lookup("nope") != nil {
		t.Error("Lookup")
	}
	if s.Len() != 8 || s.Rules()[3].Name() != "orders-write" {
		t.Error("Len/Rules")
	}
}

func TestCheck(t *testing.T) {
	s := mustCompile(t, `
- name: any
  require: { any_roles: [admin, ops] }
- name: all
  require: { all_roles: ["orders-api:writer", user] }
- name: scopes
  require: { all_roles: [user], scopes: ["orders:write", "orders:read"] }
- name: claims
  require: { claims: { email_verified: true, "realm_access.roles": admin, level: 3, tenant: acme } }
- name: none
`)
	p := func(roles, scopes []string, claims map[string]any) *Principal {
		return &Principal{Roles: roles, Scopes: scopes, Claims: claims}
	}
	good := map[string]any{"email_verified": true, "realm_access": map[string]any{"roles": []any{"user", "admin"}}, "level": 3.0, "tenant": "acme"}
	cases := []struct {
		rule    string
		p       *Principal
		verdict Verdict
		missing string
	}{
		{"any", p([]string{"ops"}, nil, nil), VerdictOK, ""},
		{"any", p([]string{"user"}, nil, nil), VerdictForbidden, `one of roles ["admin" "ops"]`},
		{"all", p([]string{"user", "orders-api:writer"}, nil, nil), VerdictOK, ""},
		{"all", p([]string{"user"}, nil, nil), VerdictForbidden, `"orders-api:writer" role`},
		{"scopes", p([]string{"user"}, []string{"orders:read", "orders:write"}, nil), VerdictOK, ""},
		{"scopes", p([]string{"user"}, []string{"orders:read"}, nil), VerdictInsufficientScope, `scope "orders:write"`},
		{"scopes", p(nil, nil, nil), VerdictForbidden, `"user" role`},
		{"claims", p(nil, nil, good), VerdictOK, ""},
		{"claims", p(nil, nil, map[string]any{"email_verified": "true", "realm_access": map[string]any{"roles": []any{"admin"}}, "level": 3.0, "tenant": "acme"}), VerdictForbidden, "claim email_verified = true"},
		{"claims", p(nil, nil, map[string]any{"email_verified": true, "realm_access": map[string]any{"roles": []any{"user"}}, "level": 3.0, "tenant": "acme"}), VerdictForbidden, `claim realm_access.roles = "admin"`},
		{"claims", p(nil, nil, map[string]any{"email_verified": true, "realm_access": map[string]any{"roles": []any{"admin"}}, "level": 3.5, "tenant": "acme"}), VerdictForbidden, "claim level = 3"},
		{"claims", p(nil, nil, map[string]any{"email_verified": true, "realm_access": map[string]any{"roles": []any{"admin"}}, "level": 3.0}), VerdictForbidden, `claim tenant = "acme"`},
		{"none", p(nil, nil, nil), VerdictOK, ""},
	}
	for _, c := range cases {
		out := s.Lookup(c.rule).Check(c.p)
		if out.Verdict != c.verdict || strings.Join(out.Missing, "; ") != c.missing {
			t.Errorf("%s %+v: got %v %q, want %v %q", c.rule, c.p, out.Verdict, out.Missing, c.verdict, c.missing)
		}
	}
	out := s.Lookup("scopes").Check(p([]string{"user"}, nil, nil))
	if strings.Join(out.MissingScopes, " ") != "orders:write orders:read" {
		t.Errorf("MissingScopes = %v", out.MissingScopes)
	}
}

func TestWarnings(t *testing.T) {
	s := mustCompile(t, `
- name: docs
  match: { paths: ["/docs/**"], methods: [GET] }
  public: true
- name: api
  match: { paths: ["/api/**"] }
- name: admin
  match: { paths: ["/api/admin/**"] }
  require: { any_roles: [admin] }
- name: docs-edit
  match: { paths: ["/docs/*"] }
  require: { any_roles: [editor] }
- name: host-api
  match: { hosts: [a.example.com], paths: ["/api/x"] }
`)
	want := []string{
		`rules[2] "admin" is shadowed by rules[1] "api" (the earlier rule matches every request it matches; first match wins)`,
		`rules[0] "docs" is public and comes first: it takes the GET requests of protected rules[3] "docs-edit"`,
		`rules[4] "host-api" is shadowed by rules[1] "api" (the earlier rule matches every request it matches; first match wins)`,
	}
	if got := strings.Join(s.Warnings(), "\n"); got != strings.Join(want, "\n") {
		t.Errorf("warnings\n got: %s\nwant: %s", got, strings.Join(want, "\n"))
	}
	quiet := mustCompile(t, `
- name: admin
  match: { paths: ["/api/admin/**"] }
- name: api
  match: { paths: ["/api/**"] }
- name: orders
  match: { paths: ["/orders/{id}"], methods: [POST] }
- name: orders-read
  match: { paths: ["/orders/*"], methods: [GET] }
`)
	if len(quiet.Warnings()) != 0 {
		t.Errorf("unexpected warnings: %v", quiet.Warnings())
	}
}

func TestNormalizePath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"/api/admin", "/api/admin"},
		{"/api/./admin", "/api/admin"},
		{"//api//admin", "/api/admin"},
		{"/api/%61dmin", "/api/admin"},
		{"/api/x/../admin", "/api/admin"},
		{"/api/admin?x=1", "/api/admin"},
		{"/api/admin#f", "/api/admin"},
		{"/api/x/%2e%2e/admin", "/api/admin"},
		{"/api/x/%2E%2E/admin", "/api/admin"},
		{"/api/x/.%2e/admin", "/api/admin"},
		{"/../../etc/passwd", "/etc/passwd"},
		{"/a/b/..", "/a/"},
		{"/a/b/.", "/a/b/"},
		{"/api/", "/api/"},
		{"/", "/"},
		{"/..", "/"},
		{"/a%20b", "/a%20b"},
		{"/a%2ab", "/a%2Ab"},
		{"/%7Euser", "/~user"},
		{"/a?b/../c", "/a"},
		{"/.hidden", "/.hidden"},
		{"/a/...", "/a/..."},
	}
	for _, c := range cases {
		got, err := NormalizePath(c.in)
		if err != nil || got != c.want {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	bad := []struct{ in, want string }{
		{"/a%2Fb", `path: encoded "/" in path`},
		{"/a%2fb", `path: encoded "/" in path`},
		{"/a%5Cb", `path: encoded "\\" in path`},
		{"/a\\b", "path: backslash in path"},
		{"/a%00b", "path: encoded control character in path"},
		{"/a\x00b", "path: control character in path"},
		{"/a\nb", "path: control character in path"},
		{"/a%", "path: invalid percent-escape"},
		{"/a%4", "path: invalid percent-escape"},
		{"/a%G1", "path: invalid percent-escape"},
		{"", `path: "" is not an absolute path`},
		{"*", `path: "*" is not an absolute path`},
		{"http://h/a", `path: "http://h/a" is not an absolute path`},
		{"?x", `path: "" is not an absolute path`},
	}
	for _, c := range bad {
		_, err := NormalizePath(c.in)
		if err == nil || err.Error() != c.want || !errorsIsAmbiguous(err) {
			t.Errorf("NormalizePath(%q) error = %v; want %s", c.in, err, c.want)
		}
	}
}

func errorsIsAmbiguous(err error) bool {
	var pe *PathError
	return fmt.Sprint(err) != "" && asPathError(err, &pe) && pe.Unwrap() == ErrAmbiguousPath
}

func asPathError(err error, target **PathError) bool {
	return errors.As(err, target) && errors.Is(err, ErrAmbiguousPath)
}
