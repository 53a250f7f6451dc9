package rules

import (
	"reflect"
	"testing"
)

// TestRuleReads: Rule.Reads names exactly the variables a rule's conditions read, wherever
// they stand in the expression (an operand, a macro, a list, a nested alternative), so that a
// caller may leave the others out of the Input.
func TestRuleReads(t *testing.T) {
	for _, c := range []struct {
		name, require string
		want          []string
	}{
		{"no condition", `{ any_roles: [user] }`, nil},
		{"tenant isolation", `{ any_roles: [user], when: 'claims.tenant_id == params.tenant' }`, []string{"claims", "params"}},
		{"has() of a query parameter", `{ when: 'has(request.query.tenant)' }`, []string{"request.query"}},
		{"inside a macro and a list", `{ when: '[source.address].exists(a, cidr("10.0.0.0/8").containsIP(a)) && now > timestamp("2020-01-01T00:00:00Z")' }`, []string{"now", "source.address"}},
		{"in a map literal", `{ when: '{"k": request.method}["k"] == "GET"' }`, []string{"request.method"}},
		{"nested alternatives", `{ any_of: [ { any_roles: [admin] }, { any_of: [ { when: 'request.headers["x-tenant"] == context["zone"]' } ] } ] }`, []string{"context", "request.headers"}},
		{"every variable", `{ when: 'size(claims) + size(roles) + size(scopes) + size(params) + size(request.headers) + size(request.query) + size(context) > 0 && request.method + request.host + request.path + source.address != "" && now > timestamp("2020-01-01T00:00:00Z")' }`, variableNames},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := mustCompile(t, `
- name: r
  match: { paths: ["/t/{tenant}/**"] }
  require: `+c.require+`
`).Rules()[0]
			var got []string
			for _, v := range append(append([]string(nil), variableNames...), "request", "claims.tenant_id", "") {
				if r.Reads(v) {
					got = append(got, v)
				}
			}
			want := map[string]bool{}
			for _, v := range c.want {
				want[v] = true
			}
			var wantList []string
			for _, v := range variableNames {
				if want[v] {
					wantList = append(wantList, v)
				}
			}
			if !reflect.DeepEqual(got, wantList) {
				t.Errorf("Reads: %q, want %q", got, wantList)
			}
		})
	}
}
