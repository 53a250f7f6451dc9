//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The forward-auth tests run the proxy examples of examples/forward-auth/ (nginx.conf,
// Caddyfile, envoy-http-service.yaml), rendered with other ports and nothing else, in front of
// the echo upstream, all calling one more Portcullis: examples/forward-auth/portcullis.yaml,
// which trusts both header conventions and strips /authz. Every proxy passes the same checks.

// forwardAuth is the Portcullis the forward-auth proxies call, started on first use.
var forwardAuth struct {
	once     sync.Once
	err      error
	httpPort int
	adminURL string
}

func forwardAuthPortcullis(t *testing.T) (httpPort int) {
	t.Helper()
	forwardAuth.once.Do(func() {
		ports, err := freePorts(3)
		if err != nil {
			forwardAuth.err = err
			return
		}
		forwardAuth.httpPort = ports[1]
		forwardAuth.adminURL = fmt.Sprintf("http://127.0.0.1:%d", ports[2])
		config := filepath.Join(env.work, "forward-auth-portcullis.yaml")
		if err := env.render("examples/forward-auth/portcullis.yaml", config, map[string]string{
			"grpc-addr":  strconv.Quote(fmt.Sprintf("127.0.0.1:%d", ports[0])),
			"http-addr":  strconv.Quote(fmt.Sprintf("127.0.0.1:%d", ports[1])),
			"admin-addr": strconv.Quote(fmt.Sprintf("127.0.0.1:%d", ports[2])),
			"issuer":     strconv.Quote(env.kc.issuer),
		}); err != nil {
			forwardAuth.err = err
			return
		}
		_, forwardAuth.err = env.startPortcullisWith("forward-auth-portcullis", config, forwardAuth.adminURL)
	})
	if forwardAuth.err != nil {
		t.Fatalf("forward-auth portcullis: %v", forwardAuth.err)
	}
	return forwardAuth.httpPort
}

// findTool returns the binary named by the environment variable, or name on PATH or in /usr/sbin.
func findTool(envVar, name, installer string) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if p := "/usr/sbin/" + name; fileExists(p) {
		return p, nil
	}
	return "", fmt.Errorf("no %s binary: run %s (or scripts/e2e.sh), or set %s", name, installer, envVar)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// startProxy starts a proxy process, stopped when t ends, and waits until a public route
// answers 200 through it: the proxy, Portcullis and the upstream are all up.
func startProxy(t *testing.T, name, base string, extraEnv []string, bin string, args ...string) {
	t.Helper()
	p, err := env.start(name, extraEnv, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(10 * time.Second) })
	if err := waitUntil(p, envoyStartTimeout, name+" "+base+"/healthz", expectStatus(base+"/healthz", http.StatusOK)); err != nil {
		t.Fatalf("%v\n%s", err, p.tail(30))
	}
}

func TestForwardAuthNginx(t *testing.T) {
	nginx, err := findTool("PORTCULLIS_NGINX", "nginx", "scripts/install-nginx.sh")
	if err != nil {
		t.Fatal(err)
	}
	authPort := forwardAuthPortcullis(t)
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	// Debian's nginx has its paths compiled in (/var/lib/nginx, /var/log/nginx): a prefix of
	// its own holds the temporary files and the pid. It is world-readable, as the workers
	// drop to nobody when the master runs as root.
	prefix, err := os.MkdirTemp("", "portcullis-e2e-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(prefix) })
	if err := os.Chmod(prefix, 0o755); err != nil {
		t.Fatal(err)
	}
	site := filepath.Join(env.work, "nginx-site.conf")
	if err := env.render("examples/forward-auth/nginx.conf", site, map[string]string{
		"listen-addr":    fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"portcullis-url": fmt.Sprintf("http://127.0.0.1:%d", authPort),
		"upstream-url":   fmt.Sprintf("http://127.0.0.1:%d", env.upstream.port()),
	}); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(env.work, "nginx.conf")
	conf := fmt.Sprintf(`# The main configuration around examples/forward-auth/nginx.conf, for the test.
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[2]s;
}
`, prefix, site)
	if err := os.WriteFile(main, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	startProxy(t, "nginx", base, nil, nginx, "-p", prefix, "-e", "stderr", "-c", main, "-g", "daemon off;")
	checkForwardAuth(t, base, proxyTraits{})
}

func TestForwardAuthCaddy(t *testing.T) {
	caddy, err := findTool("PORTCULLIS_CADDY", "caddy", "scripts/install-caddy.sh")
	if err != nil {
		t.Fatal(err)
	}
	authPort := forwardAuthPortcullis(t)
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(env.work, "Caddyfile")
	if err := env.render("examples/forward-auth/Caddyfile", conf, map[string]string{
		"listen-host":     "127.0.0.1",
		"listen-port":     strconv.Itoa(ports[0]),
		"portcullis-addr": fmt.Sprintf("127.0.0.1:%d", authPort),
		"upstream-addr":   fmt.Sprintf("127.0.0.1:%d", env.upstream.port()),
	}); err != nil {
		t.Fatal(err)
	}
	// Caddy keeps an autosave of its configuration and its data under these.
	home := filepath.Join(env.work, "caddy-home")
	caddyEnv := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + home + "/config", "XDG_DATA_HOME=" + home + "/data"}
	base := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	startProxy(t, "caddy", base, caddyEnv, caddy, "run", "--config", conf, "--adapter", "caddyfile")
	checkForwardAuth(t, base, proxyTraits{})
}

func TestForwardAuthEnvoyHTTPService(t *testing.T) {
	base := startEnvoyHTTPService(t, "envoy-http-service", forwardAuthPortcullis(t))
	checkForwardAuth(t, base, proxyTraits{portcullisBody: true})
}

// startEnvoyHTTPService runs examples/forward-auth/envoy-http-service.yaml in front of the echo
// upstream, calling the Portcullis HTTP front on authPort, and returns its base URL.
func startEnvoyHTTPService(t *testing.T, name string, authPort int) string {
	t.Helper()
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(env.work, name+".yaml")
	if err := env.render("examples/forward-auth/envoy-http-service.yaml", conf, map[string]string{
		"admin-port":      strconv.Itoa(ports[1]),
		"listen-port":     strconv.Itoa(ports[0]),
		"portcullis-uri":  fmt.Sprintf("http://127.0.0.1:%d", authPort),
		"portcullis-port": strconv.Itoa(authPort),
		"upstream-port":   strconv.Itoa(env.upstream.port()),
	}); err != nil {
		t.Fatal(err)
	}
	p, err := env.startEnvoyWith(name, conf, fmt.Sprintf("http://127.0.0.1:%d", ports[1]))
	if p != nil {
		t.Cleanup(func() { p.stop(10 * time.Second) })
	}
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", ports[0])
}

// TestForwardAuthEnvoyHTTPServiceWithoutToken: with forward_token: false, Envoy's http_service
// keeps the token from the upstream with nothing but the example's configuration: it removes
// the Authorization header Portcullis lists in x-envoy-auth-headers-to-remove, and sets the
// Cookie header Portcullis returns without the token cookie (or removes it when nothing else
// was in it). The identity headers still arrive, and the upstream never sees the removal list.
func TestForwardAuthEnvoyHTTPServiceWithoutToken(t *testing.T) {
	ports, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(env.work, "forward-auth-no-token-portcullis.yaml")
	if err := env.render("examples/forward-auth/portcullis.yaml", config, map[string]string{
		"grpc-addr":  strconv.Quote(fmt.Sprintf("127.0.0.1:%d", ports[0])),
		"http-addr":  strconv.Quote(fmt.Sprintf("127.0.0.1:%d", ports[1])),
		"admin-addr": strconv.Quote(fmt.Sprintf("127.0.0.1:%d", ports[2])),
		"issuer":     strconv.Quote(env.kc.issuer),
	}); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("\nforward_token: false\ntokens:\n  sources:\n    - header: authorization\n      prefix: \"Bearer \"\n    - cookie: access_token\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	p, err := env.startPortcullisWith("forward-auth-no-token-portcullis", config, fmt.Sprintf("http://127.0.0.1:%d", ports[2]))
	if p != nil {
		t.Cleanup(func() { p.stop(10 * time.Second) })
	}
	if err != nil {
		t.Fatal(err)
	}
	base := startEnvoyHTTPService(t, "envoy-http-service-no-token", ports[1])
	alice := env.kc.login(t, "alice")

	for _, c := range []struct {
		name   string
		token  string            // sent as Authorization: Bearer
		extra  map[string]string // other request headers
		cookie []string          // the Cookie header the upstream must see (nil: none)
	}{
		{"token in Authorization", alice.Access, map[string]string{"Cookie": "theme=dark"}, []string{"theme=dark"}},
		{"token cookie among others", "", map[string]string{"Cookie": "theme=dark; access_token=" + alice.Access + "; lang=en"}, []string{"theme=dark; lang=en"}},
		{"token cookie alone", "", map[string]string{"Cookie": "access_token=" + alice.Access}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := callAt(t, base, http.MethodGet, "/api/orders/1", c.token, c.extra)
			if r.status != http.StatusOK || !r.reached {
				t.Fatalf("got %s, want 200 from the upstream", r)
			}
			for _, h := range []string{"authorization", "x-envoy-auth-headers-to-remove"} {
				if v, ok := r.seen.Headers[h]; ok {
					t.Errorf("upstream saw %s (%d bytes)", h, len(strings.Join(v, "")))
				}
			}
			// Compared whole, reported by cookie name only: a failure must not print the token.
			if got := r.seen.Headers["cookie"]; !slices.Equal(got, c.cookie) {
				t.Errorf("upstream saw the cookies %v, want %q", cookieNames(got), c.cookie)
			}
			if v := r.one(t, "x-user-name"); v != "alice" {
				t.Errorf("x-user-name = %q, want alice", v)
			}
		})
	}
}

// cookieNames lists the names of the cookies in Cookie headers, without their values.
func cookieNames(headers []string) []string {
	var names []string
	for _, h := range headers {
		for _, part := range strings.Split(h, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			names = append(names, name)
		}
	}
	return names
}

// proxyTraits are the differences between proxies that the checks allow for.
type proxyTraits struct {
	portcullisBody bool // a deny carries Portcullis's own JSON body (not nginx: auth_request drops it)
}

// spoofedIdentity is what a client forges: every identity header in odd spellings, and with
// underscores, which some frameworks fold into the dashed name.
var spoofedIdentity = map[string]string{
	"X-User-Id":     "spoofed",
	"x-USER-roles":  "admin",
	"X-User-Email":  "mallory@example.com",
	"x-user-name":   "mallory",
	"X-User-Issuer": "https://evil.example",
	"X_User_Id":     "spoofed",
	"x_user_roles":  "admin",
	"X-User_Email":  "mallory@example.com",
}

// noForgedIdentity fails if the upstream saw any identity header other than those in want
// (name: the one value), or any underscore spelling of one.
func noForgedIdentity(t *testing.T, r reply, want map[string]string) {
	t.Helper()
	for name, vals := range r.seen.Headers {
		folded := strings.ReplaceAll(name, "_", "-")
		if !slices.Contains(identityHeaders, folded) {
			continue
		}
		if folded != name {
			t.Errorf("upstream saw %s = %q", name, vals)
			continue
		}
		if w, ok := want[name]; ok {
			if len(vals) != 1 || vals[0] != w {
				t.Errorf("upstream saw %s = %q, want [%q]", name, vals, w)
			}
			continue
		}
		t.Errorf("upstream saw %s = %q, want it absent", name, vals)
	}
	for name := range want {
		if _, ok := r.seen.Headers[name]; !ok {
			t.Errorf("upstream lacks %s", name)
		}
	}
}

// checkForwardAuth runs the forward-auth checks through the proxy at base.
func checkForwardAuth(t *testing.T, base string, traits proxyTraits) {
	alice := env.kc.login(t, "alice")
	aliceSub, _ := claims(t, alice.Access)["sub"].(string)
	bob := env.kc.login(t, "bob")
	denied := func(t *testing.T, r reply, status int, token string) {
		t.Helper()
		if traits.portcullisBody {
			expectDeny(t, r, status, token)
			return
		}
		if r.status != status || r.reached {
			t.Fatalf("got %s (upstream reached: %v), want %d from the proxy", r, r.reached, status)
		}
	}
	aliceHeaders := func(roles string) map[string]string {
		return map[string]string{
			"x-user-id": aliceSub, "x-user-name": "alice", "x-user-email": "alice@example.com",
			"x-user-roles": roles, "x-user-issuer": env.kc.issuer,
		}
	}

	t.Run("alice reads with identity headers", func(t *testing.T) {
		allows := `portcullis_decisions_total{decision="allow",front="http",reason="ok"}`
		n0 := metricAt(t, forwardAuth.adminURL, allows)
		r := callAt(t, base, http.MethodGet, "/api/orders/1?page=2", alice.Access, nil)
		if r.status != http.StatusOK || !r.reached {
			t.Fatalf("got %s, want 200 from the upstream", r)
		}
		if r.seen.Method != http.MethodGet || r.seen.Path != "/api/orders/1?page=2" {
			t.Errorf("upstream got %s %s", r.seen.Method, r.seen.Path)
		}
		roles := r.one(t, "x-user-roles")
		for _, want := range []string{"user", "orders-api:writer"} {
			if !slices.Contains(splitList(roles), want) {
				t.Errorf("x-user-roles = %q, want %s in it", roles, want)
			}
		}
		noForgedIdentity(t, r, aliceHeaders(roles))
		if got := r.one(t, "authorization"); got != "Bearer "+alice.Access {
			t.Errorf("upstream did not get the token")
		}
		if n := metricAt(t, forwardAuth.adminURL, allows); n != n0+1 {
			t.Errorf("%s = %v, want %v", allows, n, n0+1)
		}
	})

	t.Run("no token is 401 with the challenge", func(t *testing.T) {
		before := env.upstream.hits.Load()
		r := callAt(t, base, http.MethodGet, "/api/orders/1", "", nil)
		denied(t, r, http.StatusUnauthorized, "")
		if got := r.header.Get("Www-Authenticate"); got != wwwAuthNoToken {
			t.Errorf("www-authenticate = %q, want %q", got, wwwAuthNoToken)
		}
		if env.upstream.hits.Load() != before {
			t.Errorf("upstream was called")
		}
	})

	t.Run("bad signature is 401 invalid_token", func(t *testing.T) {
		tok := tamper(alice.Access)
		r := callAt(t, base, http.MethodGet, "/api/orders/1", tok, nil)
		denied(t, r, http.StatusUnauthorized, tok)
		if www := r.header.Get("Www-Authenticate"); !strings.HasPrefix(www, wwwAuthNoToken+", ") || !strings.Contains(www, `error="invalid_token"`) {
			t.Errorf("www-authenticate = %q, want realm and error=\"invalid_token\"", www)
		}
	})

	t.Run("bob may not write", func(t *testing.T) {
		// The method reaches Portcullis: GET would be allowed for bob.
		denied(t, callAt(t, base, http.MethodPost, "/api/orders/1", bob.Access, nil), http.StatusForbidden, bob.Access)
		r := callAt(t, base, http.MethodPost, "/api/orders/1", alice.Access, nil)
		if r.status != http.StatusOK || r.seen.Method != http.MethodPost {
			t.Errorf("alice POST: got %s, want 200 with the method kept", r)
		}
	})

	t.Run("spoofed identity headers never reach the upstream", func(t *testing.T) {
		r := callAt(t, base, http.MethodGet, "/api/orders/1", alice.Access, spoofedIdentity)
		if r.status != http.StatusOK || !r.reached {
			t.Fatalf("got %s, want 200", r)
		}
		noForgedIdentity(t, r, aliceHeaders(r.one(t, "x-user-roles")))

		// Anonymous on a public route: Portcullis answers no identity header at all.
		r = callAt(t, base, http.MethodGet, "/docs/intro", "", spoofedIdentity)
		if r.status != http.StatusOK || !r.reached {
			t.Fatalf("/docs/intro: got %s, want 200", r)
		}
		noForgedIdentity(t, r, nil)
	})

	t.Run("a token without email cannot bring its own", func(t *testing.T) {
		svc := env.kc.serviceAccountToken(t, "orders-api", "orders-api-secret")
		if _, ok := claims(t, svc)["email"]; ok {
			t.Fatalf("the service account's token has an email claim; the check needs one without")
		}
		r := callAt(t, base, http.MethodGet, "/api/orders/1", svc, spoofedIdentity)
		if r.status != http.StatusOK || !r.reached {
			t.Fatalf("got %s, want 200", r)
		}
		want := map[string]string{
			"x-user-id":     claims(t, svc)["sub"].(string),
			"x-user-name":   "service-account-orders-api",
			"x-user-issuer": env.kc.issuer,
		}
		// The realm gives the service account no role, so x-user-roles is absent too; were
		// one added, the header must still not carry the spoofed admin.
		if roles, ok := r.seen.Headers["x-user-roles"]; ok && len(roles) == 1 && roles[0] != "" {
			if slices.Contains(splitList(roles[0]), "admin") {
				t.Errorf("x-user-roles = %q carries the spoofed admin", roles[0])
			}
			want["x-user-roles"] = roles[0]
		}
		noForgedIdentity(t, r, want)
	})

	t.Run("forged forward-auth headers choose nothing", func(t *testing.T) {
		// bob is no admin. Had the proxy passed a forged convention on, Portcullis would judge
		// /docs/x (public: 200) or see two conventions disagree (400; nginx turns it into 500).
		forgeries := map[string]map[string]string{
			"x-forwarded": {"X-Forwarded-Uri": "/docs/x", "X-Forwarded-Method": "GET", "X-Forwarded-Host": "intranet.example.com"},
			"x-original":  {"X-Original-URI": "/docs/x", "X-Original-Method": "GET"},
		}
		for name, forged := range forgeries {
			before := env.upstream.hits.Load()
			r := callAt(t, base, http.MethodGet, "/api/admin/users", bob.Access, forged)
			if r.status != http.StatusForbidden || env.upstream.hits.Load() != before {
				t.Errorf("%s forged: got %s, want 403 and the upstream not called", name, r)
			}
		}
		// And the other way round: a forged path cannot lock a public route either.
		r := callAt(t, base, http.MethodGet, "/docs/x", "", map[string]string{"X-Forwarded-Uri": "/api/admin/users", "X-Original-URI": "/api/admin/users"})
		if r.status != http.StatusOK || !r.reached {
			t.Errorf("/docs/x with forged paths: got %s, want 200", r)
		}
	})

	t.Run("the host reaches Portcullis", func(t *testing.T) {
		r := callAt(t, base, http.MethodGet, "/intranet/wiki", "", map[string]string{"Host": "intranet.example.com"})
		if r.status != http.StatusOK || !r.reached {
			t.Errorf("intranet.example.com: got %s, want 200", r)
		}
		r = callAt(t, base, http.MethodGet, "/intranet/wiki", "", map[string]string{"Host": "www.example.com"})
		denied(t, r, http.StatusForbidden, "")
	})
}

// serviceAccountToken runs the client credentials grant for a confidential client.
func (k *keycloak) serviceAccountToken(t *testing.T, client, secret string) string {
	t.Helper()
	tk := k.tokenRequest(t, realm, url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {client},
		"client_secret": {secret},
	})
	if tk.Access == "" {
		t.Fatal("client credentials grant: no access token")
	}
	return tk.Access
}
