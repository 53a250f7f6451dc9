package rules_test

import (
	"errors"
	"fmt"

	"github.com/portcullis-authz/portcullis/rules"
)

func Example() {
	set, err := rules.Compile([]rules.Spec{
		{Name: "health", Match: rules.MatchSpec{Paths: []string{"/healthz"}, Methods: []string{"GET"}}, Public: true},
		{Name: "orders-write", Match: rules.MatchSpec{Paths: []string{"/api/orders/{id}"}, Methods: []string{"POST", "PUT"}},
			Require: rules.RequireSpec{AllRoles: []string{"orders-api:writer"}, Scopes: []string{"orders:write"}}},
		{Name: "api", Match: rules.MatchSpec{Paths: []string{"/api/**"}}},
	})
	if err != nil {
		panic(err)
	}
	path, err := rules.NormalizePath("/api/./orders/%34%32?expand=lines")
	if err != nil {
		panic(err)
	}
	in := &rules.Input{Method: "PUT", Host: "API.example.com:443", Path: path}
	rule, params := set.MatchRequest(in)
	in.Params = params
	out := rule.Check(&rules.Principal{Roles: []string{"orders-api:writer"}}, in)
	fmt.Println(path, rule.Name(), out.Reason, out.Missing)
	// Output: /api/orders/42 orders-write insufficient_scope [scope "orders:write"]
}

// A condition binds the token to the request: a tenant's orders only for its own users.
func ExampleRule_Check_when() {
	set, err := rules.Compile([]rules.Spec{
		{Name: "tenant-orders", Match: rules.MatchSpec{Paths: []string{"/tenants/{tenant}/orders/**"}},
			Require: rules.RequireSpec{AnyRoles: []string{"user"}, When: "claims.tenant_id == params.tenant"}},
	})
	if err != nil {
		panic(err)
	}
	in := &rules.Input{Method: "GET", Host: "api.example.com", Path: "/tenants/globex/orders/7"}
	rule, params := set.MatchRequest(in)
	in.Params = params
	out := rule.Check(&rules.Principal{Roles: []string{"user"}, Claims: map[string]any{"tenant_id": "acme"}}, in)
	fmt.Println(out.Reason, out.Missing)
	// Output: forbidden [condition "claims.tenant_id == params.tenant" is false (claims.tenant_id = "acme", params.tenant = "globex")]
}

func ExampleNormalizePath() {
	for _, raw := range []string{"//api/x/%2e%2e/%61dmin/?q=1", "/api/a%2Fb"} {
		p, err := rules.NormalizePath(raw)
		fmt.Printf("%q %v %v\n", p, err, errors.Is(err, rules.ErrAmbiguousPath))
	}
	// Output:
	// "/api/admin/" <nil> false
	// "" path: encoded "/" (%2F) is read as a separator by some servers and not by others at byte 6 true
}
