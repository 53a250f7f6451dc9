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

// claimNamesConfig has an Auth0-style issuer, whose claims are namespaced by a URL, and a
// Kubernetes service-account issuer, whose claims sit in a "kubernetes.io" object.
const claimNamesConfig = `
issuers:
  - issuer: https://tenant.example.com
    jwks_file: auth0.json
    audiences: [orders-api]
    roles_claims: ["https://example.com/roles"]
  - issuer: https://kubernetes.default.svc.cluster.local
    jwks_file: kubernetes.json
    audiences: [orders-api]
identity_headers:
  x-user-id: sub
  x-user-roles: roles
  x-tier: https://example.com/tier
  x-ns: kubernetes.io.namespace
  x-sa: kubernetes.io.serviceaccount.name
cache: { tokens: %d }
rules:
  - name: admin
    match: { paths: ["/admin/**"] }
    require: { any_roles: [admin] }
  - name: gold
    match: { paths: ["/gold/**"] }
    require: { claims: { "https://example.com/tier": gold } }
  - name: shop
    match: { paths: ["/shop/**"] }
    require: { claims: { kubernetes.io.namespace: shop } }
`

// TestDottedClaimNames: identity headers and roles_claims address claims whose names hold dots
// as the rules do (the whole name first, then a dotted path), and a cached identity, which keeps
// only the claims read, still sets every header on the next request.
func TestDottedClaimNames(t *testing.T) {
	dir := t.TempDir()
	mint := map[string]func(devidp.Claims) string{}
	for _, is := range []struct{ file, issuer string }{
		{"auth0.json", "https://tenant.example.com"},
		{"kubernetes.json", "https://kubernetes.default.svc.cluster.local"},
	} {
		idp, err := devidp.New()
		if err != nil {
			t.Fatal(err)
		}
		idp.SetIssuer(is.issuer)
		if err := os.WriteFile(filepath.Join(dir, is.file), idp.JWKS(), 0o600); err != nil {
			t.Fatal(err)
		}
		mint[is.issuer] = func(c devidp.Claims) string {
			tok, err := idp.Mint(jwa.RS256, c, 5*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
	}
	auth0 := mint["https://tenant.example.com"](devidp.Claims{
		"sub": "auth0|42", "aud": "orders-api",
		"https://example.com/tier": "gold", "https://example.com/roles": []string{"admin", "auditor"},
	})
	serviceAccount := mint["https://kubernetes.default.svc.cluster.local"](devidp.Claims{
		"sub": "system:serviceaccount:shop:web", "aud": []string{"orders-api"},
		"kubernetes.io": map[string]any{
			"namespace":      "shop",
			"serviceaccount": map[string]any{"name": "web", "uid": "0b6e1c1a-8c36-4c8f-9d0e-2f3b7a1c5d9e"},
			"pod":            map[string]any{"name": "web-5d9e", "uid": "3f1c2d7e-1b8a-4a55-9a8e-0d6c1f1f2a3b"},
		},
	})
	cases := []struct {
		name, path, token string
		set, remove       string
	}{
		{"auth0 namespaced claims", "/gold/x", auth0,
			"[{x-tier gold} {x-user-id auth0|42} {x-user-roles admin,auditor}]", "[x-ns x-sa]"},
		{"auth0 namespaced roles", "/admin/x", auth0,
			"[{x-tier gold} {x-user-id auth0|42} {x-user-roles admin,auditor}]", "[x-ns x-sa]"},
		{"kubernetes service account", "/shop/x", serviceAccount,
			"[{x-ns shop} {x-sa web} {x-user-id system:serviceaccount:shop:web}]", "[x-tier x-user-roles]"},
	}
	for _, cacheSize := range []int{0, 100} {
		engine := oneShotEngine(t, []byte(fmt.Sprintf(claimNamesConfig, cacheSize)), dir)
		for _, c := range cases {
			req := &authz.Request{Method: "GET", Host: "api.example.com", Path: c.path, Headers: map[string]string{"authorization": "Bearer " + c.token}}
			for _, attempt := range []string{"first request", "second request"} {
				d := engine.Decide(context.Background(), req)
				where := fmt.Sprintf("cache %d, %s, %s", cacheSize, c.name, attempt)
				if !d.Allow || d.Reason != reason.OK {
					t.Errorf("%s: %d %s %s %v", where, d.Status, d.Reason, d.Detail, d.Missing)
					continue
				}
				if got := fmt.Sprint(d.Upstream); got != c.set {
					t.Errorf("%s: set %s, want %s", where, got, c.set)
				}
				if got := fmt.Sprint(d.UpstreamRemove); got != c.remove {
					t.Errorf("%s: remove %s, want %s", where, got, c.remove)
				}
			}
		}
	}
}
