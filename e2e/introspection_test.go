//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// introspectionCacheTTL is the cache_ttl of the introspecting Portcullis: an ended session is
// refused on require.active routes at most this long after.
const introspectionCacheTTL = 5 * time.Second

// TestIntrospectionRevocation: with Keycloak's own introspection endpoint (found through its
// discovery document) and the confidential client of the resource server (its secret read
// through the admin REST API and written to a file), a user's token passes a require.active route; once the admin API ends the user's
// sessions, the same token is refused there (401 invalid_token) within cache_ttl, while a route
// without active still lets it through until exp: the trade-off of README.md#token-introspection.
func TestIntrospectionRevocation(t *testing.T) {
	// Keycloak 26 answers active only to a client in the token's audience ("Client ... is not in
	// the token audience" otherwise): the resource server's own client, orders-api, which the
	// realm's audience mapper puts in aud. Its secret is read through the admin REST API.
	const clientID = "orders-api"
	var found []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(env.kc.adminRequest(t, http.MethodGet, "/clients?clientId="+clientID, nil, http.StatusOK), &found); err != nil || len(found) != 1 {
		t.Fatalf("client %s: %v %v", clientID, found, err)
	}
	var cred struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(env.kc.adminRequest(t, http.MethodGet, "/clients/"+found[0].ID+"/client-secret", nil, http.StatusOK), &cred); err != nil || cred.Value == "" {
		t.Fatalf("client secret of %s: %v", clientID, err)
	}
	secret := cred.Value

	dir := filepath.Join(env.work, "introspection")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "introspection-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ports, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	httpURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", ports[2])
	config := filepath.Join(dir, "portcullis.yaml")
	if err := env.render("envoy/portcullis.yaml", config, map[string]string{
		"grpc-addr":      strconv.Quote(fmt.Sprintf("127.0.0.1:%d", ports[0])),
		"http-addr":      strconv.Quote(httpURL[len("http://"):]),
		"admin-addr":     strconv.Quote(adminURL[len("http://"):]),
		"issuer":         strconv.Quote(env.kc.issuer),
		"jwks-cache-dir": strconv.Quote(filepath.Join(dir, "jwks-cache")),
	}); err != nil {
		t.Fatal(err)
	}
	rendered, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	// The issuer introspects (endpoint discovered), and a payments rule requires it.
	cfg := strings.Replace(string(rendered), "    token_types: [Bearer]", fmt.Sprintf(`    token_types: [Bearer]
    introspection:
      client_id: %s
      client_secret_file: %s
      cache_ttl: %s
      negative_cache_ttl: 5s
      timeout: 5s`, clientID, secretFile, introspectionCacheTTL), 1)
	cfg = strings.Replace(cfg, "\nrules:\n", `
rules:
  - name: payments
    match: { paths: ["/api/payments/**"] }
    require: { any_roles: [user], active: true }
`, 1)
	if !strings.Contains(cfg, "introspection:") || !strings.Contains(cfg, "active: true") {
		t.Fatalf("envoy/portcullis.yaml changed shape; this test adds to it:\n%s", cfg)
	}
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := env.startPortcullisWith("introspection-portcullis", config, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop(10 * time.Second)

	alice := env.kc.login(t, "alice").Access
	sub, _ := claims(t, alice)["sub"].(string)
	check := func(path string) (int, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, httpURL+"/", nil)
		req.Header.Set("X-Forwarded-Method", "GET")
		req.Header.Set("X-Forwarded-Host", "api.example.com")
		req.Header.Set("X-Forwarded-Uri", path)
		req.Header.Set("Authorization", "Bearer "+alice)
		resp, err := envoyClient.Do(req)
		if err != nil {
			t.Fatalf("forward-auth %s: %v", path, err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header
	}
	series := func(result string) string {
		return fmt.Sprintf(`portcullis_introspection_requests_total{issuer=%q,result=%q}`, env.kc.issuer, result)
	}

	status, h := check("/api/payments/1")
	if status != http.StatusOK || h.Get("X-User-Name") != "alice" || h.Get("X-User-Id") != sub {
		t.Fatalf("before logout: payments %d (x-user-name %q), want 200 for alice", status, h.Get("X-User-Name"))
	}
	if status, _ := check("/api/orders/1"); status != http.StatusOK {
		t.Fatalf("before logout: orders %d, want 200", status)
	}
	if got := metricAt(t, adminURL, series("active")); got != 1 {
		t.Errorf("%s = %v, want 1 (one call, then the cache)", series("active"), got)
	}
	for range 3 {
		if status, _ := check("/api/payments/1"); status != http.StatusOK {
			t.Fatalf("payments again: %d", status)
		}
	}
	if got := metricAt(t, adminURL, series("active")); got != 1 {
		t.Errorf("%s = %v after repeats within cache_ttl, want 1", series("active"), got)
	}

	// End every session of alice; her access token is still a valid JWT until exp.
	env.kc.adminRequest(t, http.MethodPost, "/users/"+sub+"/logout", nil, http.StatusNoContent)
	ended := time.Now()
	var refusedAfter time.Duration
	for {
		status, h := check("/api/payments/1")
		if status == http.StatusUnauthorized {
			refusedAfter = time.Since(ended)
			if www := h.Get("Www-Authenticate"); !strings.Contains(www, `error="invalid_token"`) {
				t.Errorf("www-authenticate %q", www)
			}
			break
		}
		if status != http.StatusOK {
			t.Fatalf("after logout: payments %d, want 200 (cached) then 401", status)
		}
		if time.Since(ended) > introspectionCacheTTL+3*time.Second {
			t.Fatalf("after logout: still allowed on payments %s later; cache_ttl is %s", time.Since(ended).Round(time.Millisecond), introspectionCacheTTL)
		}
		time.Sleep(250 * time.Millisecond) // the server's cache runs on the real clock
	}
	t.Logf("refused on the require.active route %s after the session ended (cache_ttl %s)", refusedAfter.Round(time.Millisecond), introspectionCacheTTL)
	if status, h := check("/api/orders/1"); status != http.StatusOK || h.Get("X-User-Name") != "alice" {
		t.Errorf("after logout: orders %d, want 200: without active a verified JWT passes until exp", status)
	}
	if got := metricAt(t, adminURL, series("inactive")); got != 1 {
		t.Errorf("%s = %v, want 1", series("inactive"), got)
	}
	// The revoked token replayed: the negative cache answers, Keycloak is not asked again.
	for range 3 {
		if status, _ := check("/api/payments/1"); status != http.StatusUnauthorized {
			t.Fatalf("replayed: %d", status)
		}
	}
	if got := metricAt(t, adminURL, series("inactive")); got != 1 {
		t.Errorf("%s = %v after replays within negative_cache_ttl, want 1", series("inactive"), got)
	}
	if got := metricAt(t, adminURL, series("error")); got != 0 {
		t.Errorf("%s = %v", series("error"), got)
	}
	// The client secret is never logged.
	if logs := p.tail(10000); strings.Contains(logs, secret) {
		t.Error("the Portcullis log holds the client secret")
	}
}

// adminRequest calls the demo realm's admin REST API (path below /admin/realms/demo) and
// requires the status want.
func (k *keycloak) adminRequest(t *testing.T, method, path string, body any, want int) []byte {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, k.base+"/admin/realms/"+realm+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+k.adminToken(t))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := kcClient.Do(req)
	if err != nil {
		t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("admin %s %s: %d %s, want %d", method, path, resp.StatusCode, out, want)
	}
	return out
}
