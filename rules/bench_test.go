package rules

import (
	"fmt"
	"testing"

	"github.com/portcullis-authz/portcullis/reason"
)

// benchSpecs builds n realistic rules of mixed shapes: exact and wildcard hosts, method lists,
// literal, "*", "{id}", trailing, leading and middle "**" patterns, public and protected. No
// rule but the last, a catch-all for /api, matches the benchmark requests.
func benchSpecs(n int) []Spec {
	specs := make([]Spec, 0, n)
	for i := 0; len(specs) < n-1; i++ {
		sp := Spec{Name: fmt.Sprintf("r%d", i)}
		switch i % 8 {
		case 0:
			sp.Match = MatchSpec{Methods: []string{"GET"}, Paths: []string{fmt.Sprintf("/svc/%d/**", i)}}
		case 1:
			sp.Match = MatchSpec{Hosts: []string{fmt.Sprintf("h%d.example.com", i)}, Paths: []string{"/api/**"}}
			sp.Require = RequireSpec{AnyRoles: []string{"admin"}}
		case 2:
			sp.Match = MatchSpec{Methods: []string{"POST", "PUT"}, Paths: []string{fmt.Sprintf("/api/v1/res%d/{id}/lines/*", i)}}
		case 3:
			sp.Match = MatchSpec{Paths: []string{fmt.Sprintf("/api/v1/team%d/**/edit", i), fmt.Sprintf("/api/v1/team%d/{id}", i)}}
		case 4:
			sp.Match = MatchSpec{Hosts: []string{fmt.Sprintf("*.t%d.example.com", i)}, Paths: []string{"/admin/**"}}
		case 5:
			sp.Match = MatchSpec{Methods: []string{"GET"}, Paths: []string{fmt.Sprintf("/static/v%d/**", i)}}
			sp.Public = true
		case 6:
			if i%16 == 6 {
				sp.Match = MatchSpec{Paths: []string{fmt.Sprintf("/**/report%d.csv", i)}}
			} else {
				sp.Match = MatchSpec{Paths: []string{fmt.Sprintf("/api/v2/*/items/%d", i)}}
			}
		case 7:
			sp.Match = MatchSpec{Methods: []string{"DELETE"}, Paths: []string{fmt.Sprintf("/api/v1/orders/{id}/items/%d", i)}}
		}
		specs = append(specs, sp)
	}
	return append(specs, Spec{Name: "last", Match: MatchSpec{Paths: []string{"/api/**"}}})
}

func benchSet(tb testing.TB, n int) *Set {
	tb.Helper()
	s, err := Compile(benchSpecs(n))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func benchMatch(b *testing.B, n int) {
	s := benchSet(b, n)
	reqs := []struct{ host, method, path, want string }{
		{"api.example.com:443", "GET", "/api/v1/orders/42/items", "last"},               // matches the last rule
		{"h8.example.com", "POST", "/api/v1/res2/7/lines/x/y", "last"},                  // many near misses
		{"A.T4.EXAMPLE.COM", "GET", "/static/v3/a/b/c/d/e/f/report.csv", ""},            // matches nothing
		{"[2001:db8::1]:8443", "DELETE", "/api/v2/x/items/99999/more/segments", "last"}, // IP literal
	}
	for _, r := range reqs {
		got := matchRule(s, r.host, r.method, r.path)
		if (got == nil) != (r.want == "") || got != nil && got.Name() != r.want {
			b.Fatalf("Match(%s %s %s) = %v, want %q", r.host, r.method, r.path, got, r.want)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := &reqs[i%len(reqs)]
		matchRule(s, r.host, r.method, r.path)
	}
}

func BenchmarkMatch10(b *testing.B)   { benchMatch(b, 10) }
func BenchmarkMatch100(b *testing.B)  { benchMatch(b, 100) }
func BenchmarkMatch1000(b *testing.B) { benchMatch(b, 1000) }

func BenchmarkNormalizePath(b *testing.B) {
	for _, c := range []struct{ name, raw string }{
		{"clean", "/api/v1/orders/42/items?expand=lines&x=%2F"},
		{"dirty", "//api/./v1/orders/%34%32/x/../items%2a"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := NormalizePath(c.raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCompile1000(b *testing.B) {
	specs := benchSpecs(1000)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Compile(specs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	s := mustCompile(b, `
- name: r
  require: { any_roles: [admin, ops], all_roles: [user], scopes: ["orders:write"], claims: { email_verified: true, "realm_access.roles": user } }
`)
	r := s.Lookup("r")
	p := &Principal{
		Roles:  []string{"user", "offline_access", "ops"},
		Scopes: []string{"openid", "orders:write"},
		Claims: map[string]any{"email_verified": true, "realm_access": map[string]any{"roles": []any{"offline_access", "user"}}},
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if r.Check(p, nil).Reason != reason.OK {
			b.Fatal("not ok")
		}
	}
}

// benchTenant checks the tenant-isolation rule, with or without its condition, on a matched
// request whose params MatchRequest gave.
func benchTenant(b *testing.B, require string) {
	s := mustCompile(b, `
- name: tenant-orders
  match: { paths: ["/tenants/{tenant}/orders/**"] }
  require: `+require+`
`)
	in := &Input{Method: "GET", Host: "api.example.com", Path: "/tenants/acme/orders/42",
		Headers: map[string]string{"x-tenant": "acme"}}
	p := &Principal{
		Roles:  []string{"user", "offline_access"},
		Scopes: []string{"openid", "orders:read"},
		Claims: map[string]any{"sub": "alice", "tenant_id": "acme", "email_verified": true},
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r, params := s.MatchRequest(in)
		in.Params = params
		if r.Check(p, in).Reason != reason.OK {
			b.Fatal("not ok")
		}
	}
}

func BenchmarkCheckTenantWithoutWhen(b *testing.B) {
	benchTenant(b, `{ any_roles: [user] }`)
}

func BenchmarkCheckTenantWhen(b *testing.B) {
	benchTenant(b, `{ any_roles: [user], when: 'claims.tenant_id == params.tenant' }`)
}
