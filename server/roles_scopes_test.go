package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/portcullis-authz/portcullis/authz"
	"github.com/portcullis-authz/portcullis/internal/devidp"
	"github.com/portcullis-authz/portcullis/reason"
)

// rolesScopesConfig reads roles from every shape providers use: whole claim names holding dots
// (Auth0's namespaced claims) or colons (Cognito's cognito:groups), top-level arrays, and
// space-separated strings.
const rolesScopesConfig = `
issuers:
  - issuer: https://idp.example.com
    jwks_file: keys.json
    audiences: [orders-api]
    roles_claims: ["https://example.com/roles", "cognito:groups", permissions, groups, roles]
identity_headers:
  x-user-roles: roles
  x-user-scopes: scopes
cache: { tokens: 0 }
rules:
  - name: admin
    match: { paths: ["/admin/**"] }
    require: { any_roles: [admin] }
  - name: orders-write
    match: { paths: ["/orders/**"] }
    require: { all_roles: ["read:orders", "write:orders"] }
  - name: scoped
    match: { paths: ["/scoped/**"] }
    require: { scopes: [admin] }
`

// mintWithFile writes a new development issuer's keys to dir/keys.json and returns a minter of
// its tokens, each for orders-api unless the claims say otherwise.
func mintWithFile(t *testing.T, dir, issuer string) func(devidp.Claims) string {
	t.Helper()
	idp, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	idp.SetIssuer(issuer)
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), idp.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(c devidp.Claims) string {
		t.Helper()
		full := devidp.Claims{"sub": "u-1", "aud": "orders-api"}
		for k, v := range c {
			full[k] = v
		}
		tok, err := idp.Mint(jwa.RS256, full, 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
}

// TestRolesAndScopesFromAnyClaim: roles come from each roles_claims entry whatever its shape,
// and roles and scopes are matched by exact membership only (admin is not superadmin, nor a
// part of "admin,ops").
func TestRolesAndScopesFromAnyClaim(t *testing.T) {
	dir := t.TempDir()
	mint := mintWithFile(t, dir, "https://idp.example.com")
	engine := oneShotEngine(t, []byte(rolesScopesConfig), dir)
	cases := []struct {
		name, path string
		claims     devidp.Claims
		status     int
		reason     reason.Code
		roles      string // x-user-roles on allow
		scopes     string // x-user-scopes on allow
	}{
		{"namespaced claim with dots (Auth0)", "/admin/x", devidp.Claims{"https://example.com/roles": []string{"admin"}}, 200, reason.OK, "admin", ""},
		{"claim with a colon (Cognito)", "/admin/x", devidp.Claims{"cognito:groups": []string{"admin", "eu-west"}}, 200, reason.OK, "admin,eu-west", ""},
		{"top-level permissions (Auth0 RBAC)", "/orders/x", devidp.Claims{"permissions": []string{"read:orders", "write:orders"}}, 200, reason.OK, "read:orders,write:orders", ""},
		{"top-level groups (Okta, Dex)", "/admin/x", devidp.Claims{"groups": []string{"admin"}}, 200, reason.OK, "admin", ""},
		{"top-level roles (Entra app roles)", "/admin/x", devidp.Claims{"roles": []string{"admin"}}, 200, reason.OK, "admin", ""},
		{"space-separated string", "/orders/x", devidp.Claims{"permissions": "read:orders write:orders"}, 200, reason.OK, "read:orders,write:orders", ""},
		{"merged across claims", "/orders/x", devidp.Claims{"groups": []string{"read:orders"}, "roles": "write:orders"}, 200, reason.OK, "read:orders,write:orders", ""},
		{"all_roles needs both", "/orders/x", devidp.Claims{"permissions": []string{"read:orders"}}, 403, reason.Forbidden, "", ""},
		{"superadmin is not admin", "/admin/x", devidp.Claims{"roles": []string{"superadmin"}}, 403, reason.Forbidden, "", ""},
		{"admin-ops is not admin", "/admin/x", devidp.Claims{"groups": "admin-ops superadmin"}, 403, reason.Forbidden, "", ""},
		{"a comma-separated string is one role", "/admin/x", devidp.Claims{"roles": "admin,ops"}, 403, reason.Forbidden, "", ""},
		{"the whole dotted name wins over a path", "/admin/x", devidp.Claims{"https://example.com/roles": []string{"viewer"}, "https://example": map[string]any{"com/roles": []string{"admin"}}}, 403, reason.Forbidden, "viewer", ""},
		{"no roles claim", "/admin/x", devidp.Claims{"role": "admin"}, 403, reason.Forbidden, "", ""},
		{"scope string", "/scoped/x", devidp.Claims{"scope": "openid admin"}, 200, reason.OK, "", "openid,admin"},
		{"scp list (Okta)", "/scoped/x", devidp.Claims{"scp": []string{"admin"}}, 200, reason.OK, "", "admin"},
		{"scp string (Entra)", "/scoped/x", devidp.Claims{"scp": "User.Read admin"}, 200, reason.OK, "", "User.Read,admin"},
		{"scopes list", "/scoped/x", devidp.Claims{"scopes": []string{"admin"}}, 200, reason.OK, "", "admin"},
		{"superadmin scope is not admin", "/scoped/x", devidp.Claims{"scope": "superadmin"}, 403, reason.InsufficientScope, "", ""},
		{"admin: prefix scope is not admin", "/scoped/x", devidp.Claims{"scope": "admin:read"}, 403, reason.InsufficientScope, "", ""},
		{"a role is not a scope", "/scoped/x", devidp.Claims{"roles": []string{"admin"}}, 403, reason.InsufficientScope, "admin", ""},
		{"scope wins over scp", "/scoped/x", devidp.Claims{"scope": "openid", "scp": []string{"admin"}}, 403, reason.InsufficientScope, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := engine.Decide(context.Background(), &authz.Request{Method: "GET", Host: "h", Path: c.path,
				Headers: map[string]string{"authorization": "Bearer " + mint(c.claims)}})
			if d.Status != c.status || d.Reason != c.reason {
				t.Fatalf("%d %s (%s), want %d %s", d.Status, d.Reason, d.Detail, c.status, c.reason)
			}
			if !d.Allow {
				if c.roles != "" && fmt.Sprint(d.Identity.Roles) != "["+c.roles+"]" {
					t.Errorf("roles %v, want %s", d.Identity.Roles, c.roles)
				}
				return
			}
			var set []string
			if c.roles != "" {
				set = append(set, "{x-user-roles "+c.roles+"}")
			}
			if c.scopes != "" {
				set = append(set, "{x-user-scopes "+c.scopes+"}")
			}
			if got, want := fmt.Sprint(d.Upstream), fmt.Sprint(set); got != want {
				t.Errorf("set %s, want %s", got, want)
			}
		})
	}
}
