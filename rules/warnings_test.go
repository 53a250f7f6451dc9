package rules

import (
	"reflect"
	"strings"
	"testing"
)

func TestWarnings(t *testing.T) {
	cases := []struct {
		name  string
		rules string
		want  []string
	}{
		{"identical match blocks", `
- name: api
  match: { paths: ["/api/**"], methods: [GET] }
- name: api-again
  match: { paths: ["/api/**"], methods: [GET] }
  require: { any_roles: [x] }
`, []string{`rules[1] "api-again" is shadowed by rules[0] "api" (earlier rule matches everything it matches)`}},
		{"earlier catch-all", `
- name: all
  match: { paths: ["/**"] }
- name: admin
  match: { hosts: [a.example.com], paths: ["/admin"], methods: [DELETE] }
- name: no-match-block
`, []string{
			`rules[1] "admin" is shadowed by rules[0] "all" (earlier rule matches everything it matches)`,
			`rules[2] "no-match-block" is shadowed by rules[0] "all" (earlier rule matches everything it matches)`,
		}},
		{"rule without match block first", `
- name: everything
- name: late
  match: { paths: ["/x"] }
`, []string{`rules[1] "late" is shadowed by rules[0] "everything" (earlier rule matches everything it matches)`}},
		{"broader path, host and methods", `
- name: api
  match: { hosts: ["*.example.com"], paths: ["/api/**"], methods: [GET, POST] }
- name: admin
  match: { hosts: [a.example.com, "*.b.example.com"], paths: ["/api/*/admin", "/api/**/edit", "/api/{id}"], methods: [POST] }
`, []string{`rules[1] "admin" is shadowed by rules[0] "api" (earlier rule matches everything it matches)`}},
		{"GET covers HEAD", `
- name: read
  match: { paths: ["/r"], methods: [GET] }
- name: head
  match: { paths: ["/r"], methods: [HEAD] }
`, []string{`rules[1] "head" is shadowed by rules[0] "read" (earlier rule matches everything it matches)`}},
		{"covered by two rules", `
- name: a
  match: { paths: ["/a/**"] }
- name: b
  match: { paths: ["/b/*"] }
- name: both
  match: { paths: ["/a/x", "/b/{id}"] }
`, []string{`rules[2] "both" is shadowed by rules[0] "a" and rules[1] "b" (earlier rules match everything it matches)`}},
		{"one pattern shadowed", `
- name: a
  match: { paths: ["/a/**"] }
- name: mixed
  match: { paths: ["/b", "/a/x"] }
`, []string{`rules[1].match.paths[1]: "/a/x" of rule "mixed" is shadowed by rules[0] "a" (earlier rule matches every request this pattern does)`}},
		{"public rule overlapping later protected rules", `
- name: docs
  match: { paths: ["/docs/**"], methods: [GET] }
  public: true
- name: docs-edit
  match: { paths: ["/docs/*"] }
  require: { any_roles: [editor] }
- name: everything-else
  match: { paths: ["/**/edit"] }
`, []string{`rules[0] "docs" is public and also matches some requests of later protected rules[1] "docs-edit", rules[2] "everything-else"; those requests need no token (move the protected rule above it, or narrow "docs")`}},
		{"public wildcard host", `
- name: pub
  match: { hosts: ["*.example.com"], paths: ["/x"] }
  public: true
- name: prot
  match: { hosts: [a.example.com, other.org] }
`, []string{`rules[0] "pub" is public and also matches some requests of later protected rules[1] "prot"; those requests need no token (move the protected rule above it, or narrow "pub")`}},
		{"many victims", `
- name: pub
  match: { paths: ["/**"], methods: [GET] }
  public: true
- { name: p1, match: { paths: ["/1"] } }
- { name: p2, match: { paths: ["/2"] } }
- { name: p3, match: { paths: ["/3"] } }
- { name: p4, match: { paths: ["/4"] } }
- { name: p5, match: { paths: ["/5"] } }
- { name: p6, match: { paths: ["/6"] } }
- { name: p7, match: { paths: ["/7"] } }
`, []string{`rules[0] "pub" is public and also matches some requests of later protected rules[1] "p1", rules[2] "p2", rules[3] "p3", rules[4] "p4", rules[5] "p5" and 2 more; those requests need no token (move the protected rule above it, or narrow "pub")`}},
		{"public dry_run and unregistered method", `
- name: pub
  match: { paths: ["/x"], methods: [GTE] }
  public: true
  dry_run: true
`, []string{
			`rules[0] "pub": dry_run has no effect on a public rule, which allows every request anyway`,
			`rules[0] "pub": method "GTE" is not a registered HTTP method; check its spelling`,
		}},
		{"quiet: the design's example", `
- name: health
  match: { paths: ["/healthz"], methods: [GET] }
  public: true
- name: admin
  match: { hosts: ["api.example.com"], paths: ["/api/admin/**"] }
  require: { any_roles: [admin] }
- name: orders-write
  match: { paths: ["/api/orders/*"], methods: [POST, PUT, DELETE] }
  require: { all_roles: ["orders-api:writer"], scopes: ["orders:write"] }
- name: api
  match: { paths: ["/api/**"] }
  require: { claims: { email_verified: true } }
`, nil},
		{"quiet: carve-outs, specific before general, disjoint", `
- name: health
  match: { paths: ["/healthz"] }
  public: true
- name: public-docs
  match: { paths: ["/api/docs/**"], methods: [GET] }
  public: true
- name: admin
  match: { paths: ["/api/admin/**"] }
- name: api
  match: { paths: ["/api/**"] }
- name: orders
  match: { paths: ["/orders/{id}"], methods: [POST] }
- name: orders-read
  match: { paths: ["/orders/*"], methods: [GET] }
- name: other-host
  match: { hosts: [b.example.com], paths: ["/api/**"] }
- name: catch-all
`, []string{`rules[6] "other-host" is shadowed by rules[3] "api" (earlier rule matches everything it matches)`}},
		{"quiet: not provable, so not reported", `
- name: a
  match: { paths: ["/*/**"] }
- name: b
  match: { paths: ["/**/x"] }
`, nil},
		{"quiet: not covered", `
- name: c
  match: { hosts: ["*.example.com"], paths: ["/c"] }
- name: d
  match: { hosts: ["example.com"], paths: ["/c"] }
- name: e
  match: { paths: ["/e"], methods: [GET] }
- name: f
  match: { paths: ["/e"] }
`, nil},
		{"params without a segment", `
- name: orders
  match: { paths: ["/tenants/{tenant}/orders/**", "/orgs/{org}/orders"] }
  require:
    when: 'claims.tenant_id == params.tenant_id'
    any_of:
      - { when: 'params.org == claims.org' }
      - { when: 'params.user == claims.sub' }
- name: flat
  match: { paths: ["/flat"] }
  require: { when: 'params.id == "1"' }
`, []string{
			`rules[0].require.when: "claims.tenant_id == params.tenant_id" of rule "orders" reads params.tenant_id, but no path pattern of the rule has {tenant_id} (the patterns name {tenant}, {org}), so it always fails and denies`,
			`rules[0].require.any_of[1].when: "params.user == claims.sub" of rule "orders" reads params.user, but no path pattern of the rule has {user} (the patterns name {tenant}, {org}), so it always fails and denies`,
			`rules[1].require.when: "params.id == \"1\"" of rule "flat" reads params.id, but no path pattern of the rule has {id} (the patterns have no {name} segment), so it always fails and denies`,
		}},
		{"context: a rule with context does not shadow one without", `
- name: internal
  match: { paths: ["/internal/**"], context: { zone: internal } }
- name: other
  match: { paths: ["/internal/**"] }
  require: { any_roles: [admin] }
`, nil},
		{"context: one without shadows one with", `
- name: all
  match: { paths: ["/internal/**"] }
- name: internal
  match: { paths: ["/internal/x"], context: { zone: internal } }
`, []string{`rules[1] "internal" is shadowed by rules[0] "all" (earlier rule matches everything it matches)`}},
		{"context: same context shadows, more context does not", `
- name: a
  match: { paths: ["/a/**"], context: { zone: internal } }
- name: b
  match: { paths: ["/a/b"], context: { zone: internal, tier: "1" } }
- name: c
  match: { paths: ["/a/c"], context: { zone: edge } }
`, []string{`rules[1] "b" is shadowed by rules[0] "a" (earlier rule matches everything it matches)`}},
		{"context: a public rule with another zone takes no request", `
- name: pub
  public: true
  match: { paths: ["/a/x"], context: { zone: edge } }
- name: prot
  match: { paths: ["/a/*"], context: { zone: internal } }
  require: { any_roles: [admin] }
`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := mustCompile(t, c.rules).Warnings()
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("warnings\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(c.want, "\n      "))
			}
		})
	}
}

func TestPatternCoversAndOverlaps(t *testing.T) {
	cases := []struct {
		a, b             string
		covers, overlaps bool
	}{
		{"/**", "/x/**", true, true},
		{"/x/**", "/**", false, true},
		{"/a/*", "/a/{id}", true, true},
		{"/a/*", "/a/b", true, true},
		{"/a/b", "/a/*", false, true},
		{"/a/**", "/a", true, true},
		{"/a/**/e", "/a/x/**/y/e", true, true},
		{"/a/**/e", "/a/e", true, true},
		{"/a/**/e", "/a/**", false, true},
		{"/**/x", "/**/y", false, false},
		{"/a/*", "/a/*/b", false, false},
		{"/a/**/b/**/c", "/a/x/b/y/z/c", true, true},
		{"/a", "/b", false, false},
		{"/", "/**", false, true},
		{"/**", "/", true, true},
		{"/*", "/", false, false},
		{"/*/x/**", "/**/y", false, true},
		{"/x/*/z", "/**/y/**", false, true},
		{"/x/*", "/**/y/**/z", false, false},
	}
	for _, c := range cases {
		a, _ := compilePattern(c.a)
		b, _ := compilePattern(c.b)
		if got := patternCovers(a.segs, b.segs); got != c.covers {
			t.Errorf("patternCovers(%s, %s) = %v", c.a, c.b, got)
		}
		if got := patternsOverlap(a.segs, b.segs); got != c.overlaps {
			t.Errorf("patternsOverlap(%s, %s) = %v", c.a, c.b, got)
		}
		if got := patternsOverlap(b.segs, a.segs); got != c.overlaps {
			t.Errorf("patternsOverlap(%s, %s) = %v (reversed)", c.b, c.a, got)
		}
	}
}
