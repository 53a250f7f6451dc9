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
	rule := set.Match("API.example.com:443", "PUT", path)
	out := rule.Check(&rules.Principal{Roles: []string{"orders-api:writer"}})
	fmt.Println(path, rule.Name(), out.Reason, out.Missing)
	// Output: /api/orders/42 orders-write insufficient_scope [scope "orders:write"]
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
