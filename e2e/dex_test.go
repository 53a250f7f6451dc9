//go:build e2e

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A real Dex (scripts/install-dex.sh builds it from the Go module proxy) beside the Keycloak of
// the shared stack: its static password user dana signs in with the password grant, and the
// access token Dex issues goes through a real Envoy to a Portcullis configured for Dex alone
// (e2e/testdata/dex/portcullis.yaml). The shared stack is left alone: these tests run a Dex, a
// Portcullis and an Envoy of their own, and stop them when they are done.

const (
	dexStartTimeout = 60 * time.Second

	dexClient       = "portcullis-cli" // the audience Portcullis accepts
	dexClientSecret = "portcullis-cli-secret"
	dexOtherClient  = "other-app" // a client of the same Dex that Portcullis does not accept
	dexOtherSecret  = "other-app-secret"
	dexUserEmail    = "dana@example.com"
	dexUserPassword = "dana-pw"
	dexUserName     = "dana"
	dexUserID       = "5c4b3a29-1d0e-4f6a-8b7c-9d8e7f6a5b4c" // staticPasswords[0].userID of dex.yaml
)

// dexStack is the Dex, Portcullis and Envoy of the Dex tests.
type dexStack struct {
	issuer     string
	envoyURL   string
	dex        *proc
	portcullis *proc
	envoy      *proc
	upstream   *echoUpstream
}

func findDex() (string, error) {
	if p := os.Getenv("PORTCULLIS_DEX"); p != "" {
		return p, nil
	}
	matches, _ := filepath.Glob(filepath.Join(cacheDir(), "dex-*", "bin", "dex"))
	if len(matches) > 0 {
		sort.Strings(matches)
		return matches[len(matches)-1], nil
	}
	if p, err := exec.LookPath("dex"); err == nil {
		return p, nil
	}
	return "", errors.New("no dex binary: run scripts/install-dex.sh (or scripts/e2e.sh), or set PORTCULLIS_DEX")
}

// startDexStack renders e2e/testdata/dex/{dex,portcullis}.yaml and envoy/envoy.yaml with free
// loopback ports, and starts Dex (waiting for its discovery document), Portcullis (its
// /readyz, so Dex's keys are loaded) and Envoy.
func startDexStack(t *testing.T) *dexStack {
	t.Helper()
	bin, err := findDex()
	if err != nil {
		t.Fatal(err)
	}
	ports, err := freePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	dexPort, grpcPort, adminPort, envoyPort, envoyAdminPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	dir := filepath.Join(env.work, "dex")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &dexStack{
		issuer:   fmt.Sprintf("http://127.0.0.1:%d/dex", dexPort),
		envoyURL: fmt.Sprintf("http://127.0.0.1:%d", envoyPort),
		upstream: startEchoUpstream(),
	}
	t.Cleanup(d.stop)

	dexConfig := filepath.Join(dir, "dex.yaml")
	if err := env.render("e2e/testdata/dex/dex.yaml", dexConfig, map[string]string{
		"issuer":    strconv.Quote(d.issuer),
		"http-addr": strconv.Quote(fmt.Sprintf("127.0.0.1:%d", dexPort)),
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if d.dex, err = env.start("dex", nil, bin, "serve", dexConfig); err != nil {
		t.Fatal(err)
	}
	wellKnown := d.issuer + "/.well-known/openid-configuration"
	if err := waitUntil(d.dex, dexStartTimeout, "dex "+wellKnown, expectStatus(wellKnown, http.StatusOK)); err != nil {
		t.Fatalf("%v\n%s", err, d.dex.tail(30))
	}
	t.Logf("dex ready in %s at %s", time.Since(start).Round(time.Millisecond), d.issuer)

	pcConfig := filepath.Join(dir, "portcullis.yaml")
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	if err := env.render("e2e/testdata/dex/portcullis.yaml", pcConfig, map[string]string{
		"grpc-addr":  strconv.Quote(fmt.Sprintf("127.0.0.1:%d", grpcPort)),
		"admin-addr": strconv.Quote(fmt.Sprintf("127.0.0.1:%d", adminPort)),
		"issuer":     strconv.Quote(d.issuer),
	}); err != nil {
		t.Fatal(err)
	}
	if d.portcullis, err = env.startPortcullisWith("dex-portcullis", pcConfig, adminURL); err != nil {
		t.Fatalf("%v\n%s", err, tailOf(d.portcullis))
	}

	envoyConfig := filepath.Join(dir, "envoy.yaml")
	if err := env.render("envoy/envoy.yaml", envoyConfig, map[string]string{
		"admin-port":      strconv.Itoa(envoyAdminPort),
		"listen-port":     strconv.Itoa(envoyPort),
		"portcullis-port": strconv.Itoa(grpcPort),
		"upstream-port":   strconv.Itoa(d.upstream.port()),
	}); err != nil {
		t.Fatal(err)
	}
	if d.envoy, err = env.startEnvoyWith("dex-envoy", envoyConfig, fmt.Sprintf("http://127.0.0.1:%d", envoyAdminPort)); err != nil {
		t.Fatalf("%v\n%s", err, tailOf(d.envoy))
	}
	return d
}

func tailOf(p *proc) string {
	if p == nil {
		return ""
	}
	return p.tail(30)
}

// stop ends the processes this stack started, each by its PID (process group), newest first.
func (d *dexStack) stop() {
	for _, p := range []*proc{d.envoy, d.portcullis, d.dex} {
		if p != nil {
			p.stop(10 * time.Second)
		}
	}
	d.upstream.Close()
}

var dexHTTP = &http.Client{Timeout: 10 * time.Second}

// passwordGrant signs dana in at Dex's token endpoint through client and returns the answer.
func (d *dexStack) passwordGrant(t *testing.T, client, secret string) tokens {
	t.Helper()
	form := url.Values{
		"grant_type": {"password"},
		"username":   {dexUserEmail},
		"password":   {dexUserPassword},
		"scope":      {"openid email profile"},
	}
	req, err := http.NewRequest(http.MethodPost, d.issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, secret)
	resp, err := dexHTTP.Do(req)
	if err != nil {
		t.Fatalf("dex token request: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("dex token request for %s: %d %s", client, resp.StatusCode, body)
	}
	var tk tokens
	if err := json.Unmarshal(body, &tk); err != nil {
		t.Fatalf("dex token response: %v", err)
	}
	if tk.Access == "" {
		t.Fatalf("dex token response has no access_token")
	}
	return tk
}

// dexSubject is the sub Dex gives a user of a connector: base64url (no padding) of the
// protobuf message {1: user id, 2: connector id}.
func dexSubject(userID, connID string) string {
	var b []byte
	for i, s := range []string{userID, connID} {
		b = append(b, byte((i+1)<<3|2), byte(len(s)))
		b = append(b, s...)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestDex(t *testing.T) {
	d := startDexStack(t)
	tk := d.passwordGrant(t, dexClient, dexClientSecret)
	wantSub := dexSubject(dexUserID, "local")

	t.Run("access token shape", func(t *testing.T) {
		// Guards the assumptions of e2e/testdata/dex/portcullis.yaml.
		c := claims(t, tk.Access)
		for k, want := range map[string]any{
			"iss": d.issuer, "sub": wantSub, "aud": dexClient,
			"email": dexUserEmail, "email_verified": true, "name": dexUserName,
		} {
			if c[k] != want {
				t.Errorf("claim %s = %v, want %v", k, c[k], want)
			}
		}
		if _, ok := c["typ"]; ok {
			t.Errorf("claim typ = %v, want none", c["typ"])
		}
		if h := jwtHeader(t, tk.Access); h["alg"] != "RS256" {
			t.Errorf("header alg = %v, want RS256", h["alg"])
		}
	})

	t.Run("ID token looks like the access token", func(t *testing.T) {
		// Guards the README's Dex note: nothing in Dex's ID token tells it from its access
		// token (same aud, no typ, an at_hash in both), so Portcullis accepts it too; the
		// defence is an audience that only the API's tokens carry.
		if tk.ID == "" {
			t.Fatal("dex token response has no id_token")
		}
		for name, raw := range map[string]string{"access": tk.Access, "id": tk.ID} {
			c := claims(t, raw)
			if c["aud"] != dexClient {
				t.Errorf("%s token: aud = %v, want %s", name, c["aud"], dexClient)
			}
			if _, ok := c["typ"]; ok {
				t.Errorf("%s token: typ = %v, want none", name, c["typ"])
			}
			if _, ok := c["at_hash"]; !ok {
				t.Errorf("%s token: no at_hash", name)
			}
			if h := jwtHeader(t, raw); h["typ"] != nil && h["typ"] != "JWT" {
				t.Errorf("%s token: header typ = %v", name, h["typ"])
			}
		}
		if r := callAt(t, d.envoyURL, http.MethodGet, "/api/orders/1", tk.ID, nil); r.status != http.StatusOK {
			t.Errorf("ID token: %d, want 200 (Portcullis cannot tell it from an access token)", r.status)
		}
	})

	t.Run("allowed with identity headers", func(t *testing.T) {
		before := d.upstream.hits.Load()
		r := callAt(t, d.envoyURL, http.MethodGet, "/api/orders/1", tk.Access, map[string]string{
			"x-user-id": "spoofed", // removed before Portcullis's own value is set
		})
		if r.status != http.StatusOK || !r.reached {
			t.Fatalf("got %s, want 200 from the upstream", r)
		}
		if got := d.upstream.hits.Load() - before; got != 1 {
			t.Errorf("upstream hits = %d, want 1", got)
		}
		for h, want := range map[string]string{
			"x-user-id":     wantSub,
			"x-user-email":  dexUserEmail,
			"x-user-name":   dexUserName,
			"x-user-issuer": d.issuer,
		} {
			if got := r.one(t, h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
		if v, ok := r.seen.Headers["x-user-roles"]; ok {
			t.Errorf("x-user-roles = %q, want none: Dex's static users have no groups", v)
		}
		if v, ok := r.seen.Headers["authorization"]; ok {
			t.Errorf("upstream got an authorization header (%d values), want none: forward_token is false", len(v))
		}
	})

	t.Run("no role is 403", func(t *testing.T) {
		r := callAt(t, d.envoyURL, http.MethodGet, "/api/admin/users", tk.Access, nil)
		doc := expectDeny(t, r, http.StatusForbidden, tk.Access)
		if want := "access_denied"; doc["error"] != want {
			t.Errorf("error = %q, want %q", doc["error"], want)
		}
	})

	t.Run("no token is 401", func(t *testing.T) {
		r := callAt(t, d.envoyURL, http.MethodGet, "/api/orders/1", "", nil)
		doc := expectDeny(t, r, http.StatusUnauthorized, "")
		if want := "unauthorized"; doc["error"] != want {
			t.Errorf("error = %q, want %q", doc["error"], want)
		}
		if got := r.header.Get("Www-Authenticate"); got != wwwAuthNoToken {
			t.Errorf("www-authenticate = %q, want %q", got, wwwAuthNoToken)
		}
	})

	other := d.passwordGrant(t, dexOtherClient, dexOtherSecret)
	if aud := claims(t, other.Access)["aud"]; aud != dexOtherClient {
		t.Fatalf("other client's token: aud = %v, want %s", aud, dexOtherClient)
	}
	for _, tc := range []struct {
		name, token, description string
	}{
		{"another audience", other.Access, "the access token is not meant for this service"},
		{"bad signature", tamper(tk.Access), "the access token signature is invalid"},
	} {
		t.Run(tc.name+" is 401", func(t *testing.T) {
			before := d.upstream.hits.Load()
			r := callAt(t, d.envoyURL, http.MethodGet, "/api/orders/1", tc.token, nil)
			doc := expectDeny(t, r, http.StatusUnauthorized, tc.token)
			if doc["error"] != "invalid_token" || doc["error_description"] != tc.description {
				t.Errorf("deny body = %q, want error invalid_token, error_description %q", doc, tc.description)
			}
			wantWWW := `Bearer realm="portcullis", error="invalid_token", error_description="` + tc.description + `"`
			if www := r.header.Get("Www-Authenticate"); www != wantWWW {
				t.Errorf("www-authenticate = %q, want %q", www, wantWWW)
			}
			if d.upstream.hits.Load() != before {
				t.Errorf("upstream was called")
			}
		})
	}
}
