package rules

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

type matchCase struct {
	host, method, path, want string // want: rule name, "" for none
}

func checkMatches(t *testing.T, s *Set, cases []matchCase) {
	t.Helper()
	for _, c := range cases {
		got := ""
		if r := matchRule(s, c.host, c.method, c.path); r != nil {
			got = r.Name()
		}
		if got != c.want {
			t.Errorf("Match(%q, %q, %q) = %q, want %q", c.host, c.method, c.path, got, c.want)
		}
	}
}

func TestMatchHosts(t *testing.T) {
	s := mustCompile(t, `
- name: exact
  match: { hosts: [api.example.com] }
- name: wildcard
  match: { hosts: ["*.example.com"] }
- name: ipv4
  match: { hosts: ["10.0.0.1"] }
- name: ipv6
  match: { hosts: ["[2001:db8::1]"] }
- name: loopback6
  match: { hosts: ["::1"] }
- name: mixed
  match: { hosts: [svc.internal, "*.svc.internal"] }
`)
	checkMatches(t, s, []matchCase{
		{"api.example.com", "GET", "/", "exact"},
		{"API.Example.COM", "GET", "/", "exact"},
		{"api.example.com:8443", "GET", "/", "exact"},
		{"api.example.com.", "GET", "/", "exact"},
		{"Api.Example.Com.:443", "GET", "/", "exact"},
		{"x.example.com", "GET", "/", "wildcard"},
		{"a.b.c.example.com", "GET", "/", "wildcard"},
		{"X.EXAMPLE.COM:80", "GET", "/", "wildcard"},
		{"example.com", "GET", "/", ""},
		{".example.com", "GET", "/", ""},
		{"xexample.com", "GET", "/", ""},
		{"example.com.evil.org", "GET", "/", ""},
		{"api.example.com.evil.org", "GET", "/", ""},
		{"10.0.0.1", "GET", "/", "ipv4"},
		{"10.0.0.1:9191", "GET", "/", "ipv4"},
		{"010.0.0.1", "GET", "/", ""},
		{"[2001:db8::1]:8080", "GET", "/", "ipv6"},
		{"[2001:DB8:0:0:0:0:0:1]", "GET", "/", "ipv6"},
		{"2001:db8::1", "GET", "/", "ipv6"},
		{"[::1]:8080", "GET", "/", "loopback6"},
		{"[::1]", "GET", "/", "loopback6"},
		{"[0:0::1]", "GET", "/", "loopback6"},
		{"[::ffff:10.0.0.1]", "GET", "/", "ipv4"},
		{"[::1", "GET", "/", ""},
		{"svc.internal", "GET", "/", "mixed"},
		{"a.svc.internal", "GET", "/", "mixed"},
		{"", "GET", "/", ""},
		{":80", "GET", "/", ""},
		// ASCII case folding only: the Kelvin sign is not "k".
		{"api.example.co\u212a", "GET", "/", ""},
	})
}

func TestMatchMethods(t *testing.T) {
	s := mustCompile(t, `
- name: read
  match: { methods: [GET], paths: ["/r"] }
- name: head-apart
  match: { methods: [HEAD], paths: ["/h"] }
- name: get-after-head
  match: { methods: [GET], paths: ["/h"] }
- name: write
  match: { methods: [POST, PUT, DELETE, PATCH], paths: ["/w"] }
- name: dav
  match: { methods: [PROPFIND, PURGE], paths: ["/w"] }
- name: any
  match: { paths: ["/w", "/r"] }
`)
	checkMatches(t, s, []matchCase{
		{"h", "GET", "/r", "read"},
		{"h", "get", "/r", "read"},
		{"h", "HEAD", "/r", "read"},
		{"h", "head", "/r", "read"},
		{"h", "POST", "/r", "any"},
		{"h", "HEAD", "/h", "head-apart"},
		{"h", "GET", "/h", "get-after-head"},
		{"h", "POST", "/w", "write"},
		{"h", "delete", "/w", "write"},
		{"h", "Patch", "/w", "write"},
		{"h", "PROPFIND", "/w", "dav"},
		{"h", "propfind", "/w", "dav"},
		{"h", "PURGE", "/w", "dav"},
		{"h", "GET", "/w", "any"},
		{"h", "OPTIONS", "/w", "any"},
		{"h", "BREW", "/w", "any"},
		{"h", "", "/w", "any"},
		{"h", "GETS", "/r", "any"},
	})
}

func TestMatchPaths(t *testing.T) {
	s := mustCompile(t, `
- name: root
  match: { paths: ["/"] }
- name: literal
  match: { paths: ["/api/health"] }
- name: one
  match: { paths: ["/api/orders/*"] }
- name: named
  match: { paths: ["/users/{id}/items/{item}"] }
- name: middle
  match: { paths: ["/api/**/edit"] }
- name: two-globstars
  match: { paths: ["/docs/**/v/**/raw"] }
- name: tail
  match: { paths: ["/api/**"] }
- name: lead
  match: { paths: ["/**/favicon.ico"] }
- name: escaped
  match: { paths: ["/files/a%20b", "/files/café", "/files/%7Euser"] }
`)
	checkMatches(t, s, []matchCase{
		{"h", "GET", "/", "root"},
		{"h", "GET", "/api/health", "literal"},
		{"h", "GET", "/api/health/", "literal"},
		{"h", "GET", "/api/healthz", "tail"},
		{"h", "GET", "/api/orders/7", "one"},
		{"h", "GET", "/api/orders/7/", "one"},
		{"h", "GET", "/api/orders", "tail"},
		{"h", "GET", "/api/orders/", "tail"},
		{"h", "GET", "/api/orders/7/lines", "tail"},
		{"h", "GET", "/users/42/items/7", "named"},
		{"h", "GET", "/users/42/items", ""},
		{"h", "GET", "/users/42/items/7/8", ""},
		{"h", "GET", "/api/edit", "middle"},
		{"h", "GET", "/api/x/edit", "middle"},
		{"h", "GET", "/api/a/b/c/edit/", "middle"},
		{"h", "GET", "/api/a/b/c/edit/more", "tail"},
		{"h", "GET", "/api/edit/edit", "middle"},
		{"h", "GET", "/docs/v/raw", "two-globstars"},
		{"h", "GET", "/docs/a/v/b/c/raw", "two-globstars"},
		{"h", "GET", "/docs/v/v/v/raw", "two-globstars"},
		{"h", "GET", "/docs/v/raw/x", ""},
		{"h", "GET", "/docs/raw", ""},
		{"h", "GET", "/api", "tail"},
		{"h", "GET", "/api/", "tail"},
		{"h", "GET", "/api/x/y/z", "tail"},
		{"h", "GET", "/apix", ""},
		{"h", "GET", "/favicon.ico", "lead"},
		{"h", "GET", "/a/b/favicon.ico", "lead"},
		{"h", "GET", "/api/favicon.ico", "tail"},
		{"h", "GET", "/files/a%20b", "escaped"},
		{"h", "GET", "/files/caf%C3%A9", "escaped"},
		{"h", "GET", "/files/~user", "escaped"},
		{"h", "GET", "/files/a b", ""},
		{"h", "GET", "/other", ""},
	})
}

// TestMatchFirstWins: the earliest matching rule in file order wins, whichever index holds it.
func TestMatchFirstWins(t *testing.T) {
	s := mustCompile(t, `
- name: admin-host
  match: { hosts: [api.example.com], paths: ["/api/admin/**"] }
- name: catch-some
  match: { paths: ["/api/*/x"] }
- name: admin-any
  match: { paths: ["/api/admin/**"], methods: [DELETE] }
- name: wildcard-host
  match: { hosts: ["*.example.com"], paths: ["/api/**"] }
- name: exact-host-late
  match: { hosts: [api.example.com], paths: ["/api/**"] }
- name: api
  match: { paths: ["/api/**"] }
- name: everything
`)
	checkMatches(t, s, []matchCase{
		{"api.example.com", "DELETE", "/api/admin/x", "admin-host"},
		{"other.org", "DELETE", "/api/admin/x", "catch-some"},
		{"other.org", "DELETE", "/api/admin/y", "admin-any"},
		{"other.org", "GET", "/api/admin/y", "api"},
		{"api.example.com", "GET", "/api/other", "wildcard-host"},
		{"a.example.com", "GET", "/api/admin/y", "wildcard-host"},
		{"a.example.com", "DELETE", "/api/admin/y", "admin-any"},
		{"other.org", "GET", "/api", "api"},
		{"other.org", "GET", "/elsewhere", "everything"},
		{"", "", "/", "everything"},
	})
	none := mustCompile(t, `
- name: a
  match: { paths: ["/a"] }
`)
	checkMatches(t, none, []matchCase{{"h", "GET", "/b", ""}, {"h", "GET", "/", ""}, {"h", "GET", "/a/b", ""}})
}

// TestMatchIsLinear: many "**" and a very long path cost time proportional to the path, not a
// backtracking search (which takes hours for this input).
func TestMatchIsLinear(t *testing.T) {
	s := mustCompile(t, `
- name: deep
  match: { paths: ["/**/a/**/a/**/a/**/b"] }
- name: other
  match: { paths: ["/**/a/**/c", "/a/*/a/*/a/**/d"] }
`)
	p := strings.Repeat("/a", 30000)
	start := time.Now()
	if r := matchRule(s, "h", "GET", p); r != nil {
		t.Errorf("matched %s", r.Name())
	}
	if r := matchRule(s, "h", "GET", p+"/b"); r == nil || r.Name() != "deep" {
		t.Errorf("want deep, got %v", r)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("matching took %v", d)
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	s := benchSet(t, 1000)
	for _, c := range []matchCase{
		{"API.EXAMPLE.COM:443", "GET", "/api/v1/orders/42/items", ""},
		{"h7.example.com", "get", "/svc/12/x/y", ""},
		{"[::1]:80", "PROPFIND", "/static/a/b.css", ""},
	} {
		if n := testing.AllocsPerRun(100, func() { matchRule(s, c.host, c.method, c.path) }); n != 0 {
			t.Errorf("Match(%q, %q, %q): %v allocations", c.host, c.method, c.path, n)
		}
	}
}

// TestMatchManyLiveNodes: more live nodes than the matcher's stack buffer still match right.
func TestMatchManyLiveNodes(t *testing.T) {
	var y strings.Builder
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&y, "- name: r%d\n  match: { paths: [\"/**/x%d/**/end\"] }\n", i, i)
	}
	y.WriteString("- name: last\n  match: { paths: [\"/**/end\"] }\n")
	s := mustCompile(t, y.String())
	var p strings.Builder
	for i := 39; i >= 0; i-- {
		fmt.Fprintf(&p, "/x%d", i)
	}
	checkMatches(t, s, []matchCase{
		{"h", "GET", p.String() + "/end", "r0"},
		{"h", "GET", "/x39/y/end", "r39"},
		{"h", "GET", "/y/end", "last"},
	})
}

// TestHostAndMethodReference: on the documented forms of hosts and methods, the real matcher
// and the plain reference (refHosts, refMethods) both give the expected rule, so that the
// property and fuzz tests compare the matcher with a reference known to be right.
func TestHostAndMethodReference(t *testing.T) {
	s := mustCompile(t, `
- name: head-apart
  match: { hosts: ["[::1]"], methods: [HEAD] }
- name: exact
  match: { hosts: ["API.Example.com."], methods: [GET] }
- name: wildcard
  match: { hosts: ["*.example.com"], methods: [POST, PURGE] }
- name: ipv4-final-dot
  match: { hosts: ["10.0.0.1."] }
- name: mapped
  match: { hosts: ["[::ffff:10.0.0.2]", "2001:db8::1"], methods: [GET] }
- name: loopback
  match: { hosts: ["[::1]"], methods: [GET] }
- name: rest
  match: { methods: [DELETE] }
`)
	cases := []matchCase{
		{"api.example.com", "GET", "/", "exact"},
		{"api.example.com", "HEAD", "/", "exact"}, // GET also matches HEAD
		{"api.example.com", "hEaD", "/", "exact"},
		{"API.EXAMPLE.COM.:8443", "get", "/", "exact"},
		{"api.example.com", "POST", "/", "wildcard"}, // at any depth, and one more label
		{"a.api.example.com", "post", "/", "wildcard"},
		{"a.b.c.example.com:1", "Purge", "/", "wildcard"},
		{"example.com", "POST", "/", ""},
		{".example.com", "POST", "/", ""},
		{"api.example.com", "PUT", "/", ""},
		{"api.example.co\u212a", "GET", "/", ""}, // the Kelvin sign is not "k"
		{"api.example.com", "G\u0130T", "/", ""}, // nor is U+0130 an "E"
		{"10.0.0.1", "PATCH", "/", "ipv4-final-dot"},
		{"10.0.0.1.:80", "BREW", "/", "ipv4-final-dot"},
		{"[::ffff:10.0.0.1]:80", "", "/", "ipv4-final-dot"}, // absent methods match every method
		{"10.0.0.2", "GET", "/", "mapped"},
		{"[2001:DB8:0::1]:443", "GET", "/", "mapped"},
		{"2001:db8::1", "HEAD", "/", "mapped"},
		{"[::1]:8080", "HEAD", "/", "head-apart"},
		{"[::1]", "GET", "/", "loopback"},
		{"::1", "get", "/", "loopback"},
		{"[::1]", "DELETE", "/", "rest"},
		{"1.example.com", "delete", "/", "rest"},
	}
	checkMatches(t, s, cases)
	for _, c := range cases {
		got := ""
		r, ok := refMatch(s, c.host, c.method, c.path)
		if r != nil {
			got = r.Name()
		}
		if !ok || got != c.want {
			t.Errorf("refMatch(%q, %q, %q) = %q, %v; want %q", c.host, c.method, c.path, got, ok, c.want)
		}
	}
	// Shapes the documentation does not name are left to Match; the reference says so.
	for _, h := range []string{"[::1]x", "[::1]:80:90", "[api.example.com]", "[fe80::1%eth0]", "::1%eth0", "[::1"} {
		if _, ok := refMatch(s, h, "GET", "/"); ok {
			t.Errorf("refMatch reads the host %q", h)
		}
	}
}

// matchRule is MatchRequest for a request without context extensions, returning the rule.
func matchRule(s *Set, host, method, path string) *Rule {
	r, _ := s.MatchRequest(&Input{Host: host, Method: method, Path: path})
	return r
}
