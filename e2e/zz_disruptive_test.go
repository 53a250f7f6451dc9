//go:build e2e

package e2e

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

// The tests here change the shared stack for good (a new signing key; Keycloak stopped). Go
// runs a package's tests in the order of its files' names, then of the source: this file's
// name keeps them after every other test, and TestKeycloakDown is the very last.

// minRefreshInterval is issuers[0].min_refresh_interval in envoy/portcullis.yaml.
const minRefreshInterval = 10 * time.Second

// TestKeyRotation adds a new signing key in Keycloak while everything runs: tokens signed
// with it must be accepted (an unknown kid makes Portcullis refetch the key set).
func TestKeyRotation(t *testing.T) {
	before := env.kc.login(t, "alice")
	oldKid := jwtHeader(t, before.Access)["kid"]

	env.kc.addRSAKey(t, "e2e-rotated", 200)
	after := env.kc.login(t, "alice")
	newKid, _ := jwtHeader(t, after.Access)["kid"].(string)
	if newKid == "" || newKid == oldKid {
		t.Fatalf("kid after rotation = %q, before %v: Keycloak did not switch keys", newKid, oldKid)
	}
	if kids := env.kc.jwksKids(t); !slices.Contains(kids, newKid) {
		t.Fatalf("JWKS kids %v lack the new %s", kids, newKid)
	}

	// Unknown-kid refreshes are rate limited by min_refresh_interval: let it pass since the
	// last fetch Portcullis may have made, so the first try is decisive.
	time.Sleep(minRefreshInterval + time.Second)
	refreshes := `portcullis_jwks_refreshes_total{issuer="` + env.kc.issuer + `",result="success",trigger="unknown_kid"}`
	n0 := metric(t, refreshes)
	if r := call(t, http.MethodGet, "/api/orders/1", after.Access, nil); r.status != http.StatusOK {
		t.Fatalf("token with the new kid: got %s, want 200", r)
	}
	if n := metric(t, refreshes); n != n0+1 {
		t.Errorf("%s = %v after the new kid, want %v", refreshes, n, n0+1)
	}
	// The old key is still published, so its tokens stay valid.
	if r := call(t, http.MethodGet, "/api/orders/1", before.Access, nil); r.status != http.StatusOK {
		t.Fatalf("token with the old kid: got %s, want 200", r)
	}
}

// TestKeycloakDown stops Keycloak for good: keep it last.
func TestKeycloakDown(t *testing.T) {
	alice := env.kc.login(t, "alice")
	env.kc.proc.stop(30 * time.Second)
	if r := call(t, http.MethodGet, "/api/orders/1", alice.Access, nil); r.status != http.StatusOK {
		t.Fatalf("Keycloak down, running Portcullis: got %s, want 200", r)
	}

	// A cold start with the identity provider unreachable: keys come from jwks_cache_dir.
	if err := env.restartPortcullis(); err != nil {
		t.Fatalf("restart with Keycloak down: %v", err)
	}
	if r := call(t, http.MethodGet, "/api/orders/1", alice.Access, nil); r.status != http.StatusOK {
		t.Fatalf("Keycloak down, restarted Portcullis: got %s, want 200", r)
	}
	// Without the token, still a proper challenge.
	expectDeny(t, call(t, http.MethodGet, "/api/orders/1", "", nil), http.StatusUnauthorized, "")
}
