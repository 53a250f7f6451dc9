package authz

import (
	"fmt"
	"testing"

	"github.com/portcullis-authz/portcullis/token"
)

// claimPaths compiles claim paths for a test.
func claimPaths(tb testing.TB, names ...string) []token.ClaimPath {
	tb.Helper()
	out := make([]token.ClaimPath, len(names))
	for i, n := range names {
		p, err := token.CompileClaimPath(n)
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = p
	}
	return out
}

// attributes compiles identity headers (header → claim) for a test.
func attributes(tb testing.TB, headers map[string]string) map[string]token.Attribute {
	tb.Helper()
	out := make(map[string]token.Attribute, len(headers))
	for name, claim := range headers {
		a, err := token.CompileAttribute(claim)
		if err != nil {
			tb.Fatal(err)
		}
		out[name] = a
	}
	return out
}

// TestIdentityHeadersByClaimPath: identity headers address claims as the rules do, so claim
// names with dots (Auth0's namespaced claims, Kubernetes' kubernetes.io object) are set.
func TestIdentityHeadersByClaimPath(t *testing.T) {
	e := NewEngine(Options{IdentityHeaders: attributes(t, map[string]string{
		"x-tier":   "https://example.com/tier",
		"x-ns":     "kubernetes.io.namespace",
		"x-sa":     "kubernetes.io.serviceaccount.name",
		"x-level":  "profile.level",
		"x-scopes": "scopes",
		"x-iss":    "iss",
		"x-absent": "kubernetes.io.pod.name",
		"x-object": "kubernetes.io",
	})})
	id := &token.Identity{Issuer: "https://kubernetes.default.svc", Scopes: []string{"a", "b"}, Claims: map[string]any{
		"https://example.com/tier": "gold",
		"kubernetes.io":            map[string]any{"namespace": "shop", "serviceaccount": map[string]any{"name": "web"}},
		"profile":                  map[string]any{"level": 3.0},
	}}
	ci := e.render(id)
	if got := fmt.Sprint(ci.upstream); got != "[{x-iss https://kubernetes.default.svc} {x-level 3} {x-ns shop} {x-sa web} {x-scopes a,b} {x-tier gold}]" {
		t.Errorf("set = %s", got)
	}
	if got := fmt.Sprint(ci.remove); got != "[x-absent x-object]" {
		t.Errorf("remove = %s", got)
	}
}
