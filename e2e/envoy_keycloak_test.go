//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests share one stack. Those that change it for good (a new signing key; Keycloak
// stopped) are in zz_disruptive_test.go, whose name keeps them last.

const wwwAuthNoToken = `Bearer realm="portcullis"`

var identityHeaders = []string{"x-user-id", "x-user-name", "x-user-email", "x-user-roles", "x-user-issuer"}

// one returns the single value of header h the upstream saw, failing on zero or several.
func (r reply) one(t *testing.T, h string) string {
	t.Helper()
	v := r.seen.Headers[h]
	if len(v) != 1 {
		t.Fatalf("upstream saw %s = %q, want exactly one value", h, v)
	}
	return v[0]
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// expectDeny checks status, that the upstream was not reached, that the body is the JSON
// error document and that it does not echo the token.
func expectDeny(t *testing.T, r reply, status int, token string) map[string]string {
	t.Helper()
	if r.status != status {
		t.Fatalf("got %s, want %d", r, status)
	}
	if r.reached {
		t.Fatalf("denied request reached the upstream: %s", r)
	}
	if token != "" && strings.Contains(string(r.body), token) {
		t.Fatalf("deny body echoes the token")
	}
	var doc map[string]string
	if err := json.Unmarshal(r.body, &doc); err != nil || doc["error"] == "" {
		t.Fatalf("deny body is not {\"error\": ...}: %q (%v)", r.body, err)
	}
	return doc
}

func TestAccessTokenShape(t *testing.T) {
	// Guards the realm file: Portcullis's config relies on these claims.
	tk := env.kc.login(t, "alice")
	c := claims(t, tk.Access)
	if c["iss"] != env.kc.issuer {
		t.Errorf("iss = %v, want %s", c["iss"], env.kc.issuer)
	}
	if c["typ"] != "Bearer" {
		t.Errorf("typ = %v, want Bearer", c["typ"])
	}
	aud := c["aud"]
	if !(aud == "orders-api" || slices.Contains(anyStrings(aud), "orders-api")) {
		t.Errorf("aud = %v, want orders-api in it", aud)
	}
	if got := anyStrings(dig(c, "realm_access", "roles")); !slices.Contains(got, "user") {
		t.Errorf("realm_access.roles = %v, want user", got)
	}
	if got := anyStrings(dig(c, "resource_access", "orders-api", "roles")); !slices.Equal(got, []string{"writer"}) {
		t.Errorf("resource_access.orders-api.roles = %v, want [writer]", got)
	}
	if typ := claims(t, tk.ID)["typ"]; typ != "ID" {
		t.Errorf("ID token typ = %v, want ID", typ)
	}
	// The tenant-orders rule compares this claim with the path (tenant_test.go). The realm
	// declares tenant_id in its user profile (editable by admins only) and maps it into
	// access tokens only.
	if got, ok := claims(t, tk.ID)["tenant_id"]; ok {
		t.Errorf("ID token tenant_id = %v, want none (access tokens only)", got)
	}
	for user, want := range map[string]string{"alice": "acme", "bob": "globex", "carol": "initech"} {
		access := tk.Access
		if user != "alice" {
			access = env.kc.login(t, user).Access
		}
		if got := claims(t, access)["tenant_id"]; got != want {
			t.Errorf("%s: tenant_id = %#v, want %q (a single string)", user, got, want)
		}
	}
	if typ := claims(t, tk.Refresh)["typ"]; typ != "Refresh" {
		t.Errorf("refresh token typ = %v, want Refresh", typ)
	}
}

// TestTenantIDOnlyAdminsEdit guards the realm's user profile: tenant_id is a declared
// attribute that only admins see and edit, so no user can move to another tenant (Keycloak
// maps an undeclared attribute too, but hides it from the console).
func TestTenantIDOnlyAdminsEdit(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, env.kc.base+"/admin/realms/"+realm+"/users/profile", nil)
	req.Header.Set("Authorization", "Bearer "+env.kc.adminToken(t))
	resp, err := kcClient.Do(req)
	if err != nil {
		t.Fatalf("user profile: %v", err)
	}
	defer resp.Body.Close()
	var up struct {
		Attributes []struct {
			Name        string              `json:"name"`
			Permissions map[string][]string `json:"permissions"`
			Multivalued bool                `json:"multivalued"`
		} `json:"attributes"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("user profile: %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&up); err != nil {
		t.Fatalf("user profile: %v", err)
	}
	for _, a := range up.Attributes {
		if a.Name != "tenant_id" {
			continue
		}
		if !slices.Equal(a.Permissions["edit"], []string{"admin"}) || !slices.Equal(a.Permissions["view"], []string{"admin"}) || a.Multivalued {
			t.Errorf("tenant_id: permissions %v, multivalued %v; want view and edit [admin], single-valued", a.Permissions, a.Multivalued)
		}
		return
	}
	t.Errorf("the realm's user profile declares no tenant_id")
}

func TestAliceReadsOrderWithIdentityHeaders(t *testing.T) {
	tk := env.kc.login(t, "alice")
	c := claims(t, tk.Access)
	r := call(t, http.MethodGet, "/api/orders/1", tk.Access, nil)
	if r.status != http.StatusOK || !r.reached {
		t.Fatalf("got %s, want 200 from the upstream", r)
	}
	if got := r.one(t, "x-user-id"); got != c["sub"] {
		t.Errorf("x-user-id = %q, want sub %v", got, c["sub"])
	}
	roles := splitList(r.one(t, "x-user-roles"))
	for _, want := range []string{"user", "orders-api:writer"} {
		if !slices.Contains(roles, want) {
			t.Errorf("x-user-roles = %v, want %s in it", roles, want)
		}
	}
	if got := r.one(t, "x-user-name"); got != "alice" {
		t.Errorf("x-user-name = %q, want alice", got)
	}
	if got := r.one(t, "x-user-email"); got != "alice@example.com" {
		t.Errorf("x-user-email = %q, want alice@example.com", got)
	}
	if got := r.one(t, "x-user-issuer"); got != env.kc.issuer {
		t.Errorf("x-user-issuer = %q, want %s", got, env.kc.issuer)
	}
	// forward_token: true
	if got := r.one(t, "authorization"); got != "Bearer "+tk.Access {
		t.Errorf("upstream did not get the token")
	}
}

func TestSpoofedIdentityHeadersNeverReachUpstream(t *testing.T) {
	alice := env.kc.login(t, "alice")
	sub := claims(t, alice.Access)["sub"].(string)
	spellings := []string{"x-user-id", "X-User-Id", "X-USER-ID", "x-User-iD"}
	for _, name := range spellings {
		t.Run(name, func(t *testing.T) {
			spoof := map[string]string{
				name:            "spoofed",
				"X-User-Roles":  "admin",
				"x-user-email":  "mallory@example.com",
				"X-User-Name":   "mallory",
				"x-user-issuer": "https://evil.example",
			}
			r := call(t, http.MethodGet, "/api/orders/1", alice.Access, spoof)
			if r.status != http.StatusOK {
				t.Fatalf("got %s, want 200", r)
			}
			if got := r.one(t, "x-user-id"); got != sub {
				t.Errorf("x-user-id = %q, want %q", got, sub)
			}
			if roles := splitList(r.one(t, "x-user-roles")); slices.Contains(roles, "admin") {
				t.Errorf("x-user-roles = %v carries the spoofed admin", roles)
			}
			if got := r.one(t, "x-user-email"); got != "alice@example.com" {
				t.Errorf("x-user-email = %q", got)
			}
			if got := r.one(t, "x-user-name"); got != "alice" {
				t.Errorf("x-user-name = %q", got)
			}
			if got := r.one(t, "x-user-issuer"); got != env.kc.issuer {
				t.Errorf("x-user-issuer = %q", got)
			}

			// Anonymous on a public rule: no identity, so every identity header is removed.
			r = call(t, http.MethodGet, "/docs/intro", "", spoof)
			if r.status != http.StatusOK || !r.reached {
				t.Fatalf("/docs/intro: got %s, want 200", r)
			}
			for _, h := range identityHeaders {
				if v, ok := r.seen.Headers[h]; ok {
					t.Errorf("anonymous /docs/intro: upstream saw %s = %q", h, v)
				}
			}
		})
	}
}

func TestWriteNeedsWriterRole(t *testing.T) {
	bob := env.kc.login(t, "bob")
	expectDeny(t, call(t, http.MethodPost, "/api/orders/1", bob.Access, nil), http.StatusForbidden, bob.Access)

	alice := env.kc.login(t, "alice")
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		r := call(t, m, "/api/orders/1", alice.Access, nil)
		if r.status != http.StatusOK || r.seen.Method != m {
			t.Errorf("alice %s: got %s, want 200 with the method kept", m, r)
		}
	}
	// bob may still read.
	if r := call(t, http.MethodGet, "/api/orders/1", bob.Access, nil); r.status != http.StatusOK {
		t.Errorf("bob GET: got %s, want 200", r)
	}
}

func TestNoTokenIs401WithChallenge(t *testing.T) {
	before := env.upstream.hits.Load()
	r := call(t, http.MethodGet, "/api/orders/1", "", nil)
	expectDeny(t, r, http.StatusUnauthorized, "")
	if got := r.header.Get("Www-Authenticate"); got != wwwAuthNoToken {
		t.Errorf("www-authenticate = %q, want %q", got, wwwAuthNoToken)
	}
	if env.upstream.hits.Load() != before {
		t.Errorf("upstream was called")
	}
}

func TestRefusedTokensAre401InvalidToken(t *testing.T) {
	alice := env.kc.login(t, "alice")
	cases := map[string]string{
		// The realm puts orders-api into the ID token's aud too, so only typ=ID refuses it.
		"id token":      alice.ID,
		"refresh token": alice.Refresh,
		"not a jwt":     "not-a-jwt",
		"bad signature": tamper(alice.Access),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			r := call(t, http.MethodGet, "/api/orders/1", tok, nil)
			expectDeny(t, r, http.StatusUnauthorized, tok)
			www := r.header.Get("Www-Authenticate")
			if !strings.HasPrefix(www, `Bearer realm="portcullis"`) || !strings.Contains(www, `error="invalid_token"`) {
				t.Errorf("www-authenticate = %q, want realm and error=\"invalid_token\"", www)
			}
		})
	}
}

// tamper flips a character of the signature.
func tamper(tok string) string {
	i := strings.LastIndexByte(tok, '.') + 5
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

func TestPublicRoutes(t *testing.T) {
	// ext_authz disabled on the route; the route strips identity headers itself.
	r := call(t, http.MethodGet, "/healthz", "", map[string]string{"x-user-id": "spoofed"})
	if r.status != http.StatusOK || !r.reached {
		t.Fatalf("/healthz: got %s, want 200", r)
	}
	if v, ok := r.seen.Headers["x-user-id"]; ok {
		t.Errorf("/healthz: upstream saw x-user-id = %q", v)
	}
	// Public rule named by the route's context extension.
	r = call(t, http.MethodGet, "/docs/x", "", nil)
	if r.status != http.StatusOK || !r.reached {
		t.Fatalf("/docs/x: got %s, want 200", r)
	}
	// A public rule with a valid token still yields the identity.
	carol := env.kc.login(t, "carol")
	r = call(t, http.MethodGet, "/docs/x", carol.Access, nil)
	if r.status != http.StatusOK {
		t.Fatalf("/docs/x with token: got %s, want 200", r)
	}
	if got := r.one(t, "x-user-name"); got != "carol" {
		t.Errorf("/docs/x with token: x-user-name = %q, want carol", got)
	}
}

func TestAdminNeedsAdminRole(t *testing.T) {
	carol := env.kc.login(t, "carol")
	if r := call(t, http.MethodGet, "/api/admin/users", carol.Access, nil); r.status != http.StatusOK {
		t.Errorf("carol: got %s, want 200", r)
	}
	for _, u := range []string{"bob", "alice"} {
		tk := env.kc.login(t, u)
		expectDeny(t, call(t, http.MethodGet, "/api/admin/users", tk.Access, nil), http.StatusForbidden, tk.Access)
	}
}

func TestNoRuleIs403(t *testing.T) {
	carol := env.kc.login(t, "carol")
	expectDeny(t, call(t, http.MethodGet, "/elsewhere", carol.Access, nil), http.StatusForbidden, carol.Access)
}

func TestAccessLogCarriesDecisionMetadata(t *testing.T) {
	alice := env.kc.login(t, "alice")
	sub := claims(t, alice.Access)["sub"].(string)
	if r := call(t, http.MethodPost, "/api/orders/77", alice.Access, nil); r.status != http.StatusOK {
		t.Fatalf("got %s, want 200", r)
	}
	// Envoy writes its access log with a delay (--file-flush-interval-msec).
	err := waitUntil(nil, 5*time.Second, "access log line", func() error {
		b, err := os.ReadFile(env.envoy.logPath)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			var entry map[string]any
			if json.Unmarshal([]byte(line), &entry) != nil || entry["path"] != "/api/orders/77" {
				continue
			}
			if entry["user"] == sub && entry["rule"] == "orders-write" {
				return nil
			}
			return fmt.Errorf("access log entry %s lacks user=%s rule=orders-write", line, sub)
		}
		return fmt.Errorf("no access log entry for /api/orders/77 yet")
	})
	if err != nil {
		t.Fatal(err)
	}
}

// ---- small helpers -------------------------------------------------------------------------

// metric reads one sample from Portcullis's /metrics; series is the name with its labels in
// the exposition's (sorted) order. An absent series reads 0.
func metric(t *testing.T, series string) float64 {
	t.Helper()
	return metricAt(t, env.adminURL, series)
}

// metricAt is metric for the Portcullis whose admin listener is at adminURL.
func metricAt(t *testing.T, adminURL, series string) float64 {
	t.Helper()
	resp, err := probeClient.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metrics: %q: %v", line, err)
			}
			return f
		}
	}
	return 0
}

func dig(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

func anyStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
