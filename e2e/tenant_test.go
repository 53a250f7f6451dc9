//go:build e2e

package e2e

import (
	"net/http"
	"testing"
)

// Deny descriptions (reason/reason.go), which tell a forbidden from a no_rule: both are 403
// access_denied.
const (
	descForbidden  = "the access token does not grant this request"
	descBadRequest = "the request path is malformed or ambiguous"
)

// TestTenantIsolation drives the tenant-orders rule of envoy/portcullis.yaml
// (`/tenants/{tenant}/orders/**`, role user, when: claims.tenant_id == params.tenant) through
// Envoy with Keycloak's tokens: the realm gives alice the tenant acme, bob globex and carol
// (admin, not user) initech (envoy/realm-demo.json, checked by TestAccessTokenShape).
func TestTenantIsolation(t *testing.T) {
	users := map[string]tokens{}
	subs := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		users[u] = env.kc.login(t, u)
		subs[u], _ = claims(t, users[u].Access)["sub"].(string)
	}
	const forbidden = `portcullis_decisions_total{decision="deny",front="grpc",reason="forbidden"}`

	cases := []struct {
		name, user, path string
		status           int
		upstreamPath     string // allowed: the path the upstream received
		desc             string // denied: the error_description
	}{
		{"alice on her tenant", "alice", "/tenants/acme/orders/1", http.StatusOK, "/tenants/acme/orders/1", ""},
		{"alice on another tenant", "alice", "/tenants/globex/orders/1", http.StatusForbidden, "", descForbidden},
		{"bob on his tenant", "bob", "/tenants/globex/orders/1", http.StatusOK, "/tenants/globex/orders/1", ""},
		{"bob on another tenant", "bob", "/tenants/acme/orders/1", http.StatusForbidden, "", descForbidden},
		// `**` takes zero segments too.
		{"alice on her tenant's order list", "alice", "/tenants/acme/orders", http.StatusOK, "/tenants/acme/orders", ""},

		// params are percent-decoded: ac%6de is acme (Envoy's normalize_path decodes the
		// unreserved %6d before routing, Portcullis decodes it again for the rule).
		{"alice, her tenant percent-encoded", "alice", "/tenants/ac%6de/orders/1", http.StatusOK, "/tenants/acme/orders/1", ""},
		{"bob, alice's tenant percent-encoded", "bob", "/tenants/ac%6de/orders/1", http.StatusForbidden, "", descForbidden},
		// Tenant ids compare exactly: no case folding.
		{"alice, her tenant in upper case", "alice", "/tenants/ACME/orders/1", http.StatusForbidden, "", descForbidden},
		// Envoy resolves the dot segment before routing; Portcullis decides on the same path.
		{"alice, dot segment into another tenant", "alice", "/tenants/acme/../globex/orders/1", http.StatusForbidden, "", descForbidden},
		{"bob, dot segment into his tenant", "bob", "/tenants/acme/../globex/orders/1", http.StatusOK, "/tenants/globex/orders/1", ""},
		// A path parameter makes the segment ambiguous (acme to one server, acme;x to another).
		{"alice, her tenant with a path parameter", "alice", "/tenants/acme;x/orders/1", http.StatusBadRequest, "", descBadRequest},
		{"bob, alice's tenant with a path parameter", "bob", "/tenants/acme;x/orders/1", http.StatusBadRequest, "", descBadRequest},
		// The condition holds for carol's tenant, but she lacks the role user: all must hold.
		{"carol on her tenant without the user role", "carol", "/tenants/initech/orders/1", http.StatusForbidden, "", descForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tk := users[tc.user].Access
			before := metric(t, forbidden)
			r := call(t, http.MethodGet, tc.path, tk, nil)
			if tc.status == http.StatusOK {
				if r.status != http.StatusOK || !r.reached {
					t.Fatalf("got %s, want 200 from the upstream", r)
				}
				if r.seen.Path != tc.upstreamPath {
					t.Errorf("upstream path = %q, want %q", r.seen.Path, tc.upstreamPath)
				}
				if got := r.one(t, "x-user-id"); got != subs[tc.user] {
					t.Errorf("x-user-id = %q, want %s's sub %q", got, tc.user, subs[tc.user])
				}
				if got := r.one(t, "x-user-name"); got != tc.user {
					t.Errorf("x-user-name = %q, want %s", got, tc.user)
				}
				return
			}
			if r.reached {
				// Not r itself: the upstream's echo holds the forwarded token.
				t.Fatalf("got %d from the upstream (path %q), want %d", r.status, r.seen.Path, tc.status)
			}
			doc := expectDeny(t, r, tc.status, tk)
			if doc["error_description"] != tc.desc {
				t.Errorf("error_description = %q, want %q", doc["error_description"], tc.desc)
			}
			wantForbidden := before
			if tc.desc == descForbidden {
				wantForbidden++
			}
			if got := metric(t, forbidden); got != wantForbidden {
				t.Errorf("%s = %v, want %v", forbidden, got, wantForbidden)
			}
		})
	}

	t.Run("no token", func(t *testing.T) {
		r := call(t, http.MethodGet, "/tenants/acme/orders/1", "", nil)
		expectDeny(t, r, http.StatusUnauthorized, "")
		if got := r.header.Get("Www-Authenticate"); got != wwwAuthNoToken {
			t.Errorf("www-authenticate = %q, want %q", got, wwwAuthNoToken)
		}
	})
}
