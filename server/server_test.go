package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/portcullis-authz/portcullis/internal/devidp"
)

const testConfig = `
server:
  grpc_addr: "127.0.0.1:0"
  http_addr: "127.0.0.1:0"
  admin_addr: "127.0.0.1:0"
issuers:
  - issuer: %q
    audiences: [orders-api]
    algorithms: [RS256, ES256]
    refresh_interval: 1m
    min_refresh_interval: 1s
tokens:
  sources:
    - header: authorization
      prefix: "Bearer "
    - cookie: access_token
cache:
  tokens: %d
rules:
  - name: health
    match: { paths: ["/healthz"], methods: [GET] }
    public: true
  - name: admin
    match: { hosts: ["api.example.com"], paths: ["/api/admin/**"] }
    require: { any_roles: [admin] }
  - name: orders-write
    match: { paths: ["/api/orders/*"], methods: [POST, PUT, DELETE] }
    require: { all_roles: ["orders-api:writer"], scopes: ["orders:write"] }
  - name: reports
    match: { paths: ["/api/reports/**"] }
    require: { any_roles: [analyst] }
    dry_run: true
  - name: api
    match: { paths: ["/api/**"] }
    require: { claims: { email_verified: true } }
`

// stack is a running Portcullis with a development issuer behind httptest.
type stack struct {
	idp    *devidp.IdP
	srv    *Server
	client authv3.AuthorizationClient
	conn   *grpc.ClientConn
	admin  string
	http   string
}

func startStack(t *testing.T, cacheSize int) *stack {
	t.Helper()
	return startStackAt(t, cacheSize, func(t *testing.T, content string) string {
		path := filepath.Join(t.TempDir(), "portcullis.yaml")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	})
}

// startStackAt is startStack with the configuration put in place by place, which returns the
// path Portcullis is given.
func startStackAt(t *testing.T, cacheSize int, place func(t *testing.T, content string) string) *stack {
	t.Helper()
	idp := servedIdP(t)
	path := place(t, fmt.Sprintf(testConfig, idp.Issuer(), cacheSize))
	return connectStack(t, idp, runServer(t, path))
}

// servedIdP is a development issuer served by httptest at <server>/realms/demo until the test
// ends.
func servedIdP(t *testing.T) *devidp.IdP {
	t.Helper()
	idp, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(idp)
	t.Cleanup(ts.Close)
	idp.SetIssuer(ts.URL + "/realms/demo")
	return idp
}

// connectStack is the stack of srv, a running server whose issuer is idp: a gRPC client
// connected to it (closed when the test ends), once it is ready.
func connectStack(t *testing.T, idp *devidp.IdP, srv *Server) *stack {
	t.Helper()
	conn, err := grpc.NewClient(srv.Addr("grpc").String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	st := &stack{idp: idp, srv: srv, client: authv3.NewAuthorizationClient(conn), conn: conn,
		admin: "http://" + srv.Addr("admin").String(), http: "http://" + srv.Addr("http").String()}
	st.waitReady(t)
	return st
}

// runServer starts a server on the configuration at path; it stops, and must stop cleanly,
// when the test ends.
func runServer(t *testing.T, path string) *Server {
	t.Helper()
	srv, run := listenOnly(t, path)
	run()
	return srv
}

func (st *stack) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(st.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("portcullis did not become ready")
}

func (st *stack) mint(t *testing.T, alg jwa.SignatureAlgorithm, claims devidp.Claims) string {
	t.Helper()
	base := devidp.Claims{"sub": "user-1", "aud": "orders-api", "typ": "Bearer", "email_verified": true,
		"preferred_username": "alice", "email": "alice@example.com"}
	for k, v := range claims {
		base[k] = v
	}
	tok, err := st.idp.Mint(alg, base, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func checkRequest(method, host, path string, headers map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: method, Host: host, Path: path, Headers: headers},
	}}}
}

func headerMap(opts []*corev3.HeaderValueOption) map[string]string {
	m := map[string]string{}
	for _, o := range opts {
		if o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			m["!append-action:"+o.GetHeader().GetKey()] = o.GetAppendAction().String()
		}
		m[o.GetHeader().GetKey()] = o.GetHeader().GetValue()
	}
	return m
}

func TestCheckOverGRPC(t *testing.T) {
	st := startStack(t, 100)
	ctx := context.Background()
	alice := st.mint(t, jwa.RS256, devidp.Claims{
		"realm_access":    map[string]any{"roles": []string{"user"}},
		"resource_access": map[string]any{"orders-api": map[string]any{"roles": []string{"writer"}}},
		"scope":           "openid orders:write",
	})
	aliceEC := st.mint(t, jwa.ES256, devidp.Claims{"realm_access": map[string]any{"roles": []string{"user", "admin"}}})
	noScope := st.mint(t, jwa.RS256, devidp.Claims{"resource_access": map[string]any{"orders-api": map[string]any{"roles": []string{"writer"}}}})
	expired, err := st.idp.Mint(jwa.RS256, devidp.Claims{"sub": "x", "aud": "orders-api", "typ": "Bearer"}, -time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wrongAud := st.mint(t, jwa.RS256, devidp.Claims{"aud": "account"})
	idToken := st.mint(t, jwa.RS256, devidp.Claims{"typ": "ID"})
	otherIssuer := st.mint(t, jwa.RS256, devidp.Claims{"iss": st.idp.Issuer() + "/"})
	tampered := alice[:len(alice)-4] + "AAAA"
	if tampered == alice {
		tampered = alice[:len(alice)-4] + "BBBB"
	}

	invalid := func(desc string) string {
		return `Bearer realm="portcullis", error="invalid_token", error_description="` + desc + `"`
	}
	cases := []struct {
		name       string
		req        *authv3.CheckRequest
		status     int
		code       code.Code
		www        string
		body       string
		setHeaders map[string]string
		remove     []string
	}{
		{
			name:   "allow with identity headers",
			req:    checkRequest("GET", "api.example.com", "/api/orders/1", map[string]string{"authorization": "Bearer " + alice, "x-user-id": "spoofed"}),
			status: 200, code: code.Code_OK,
			setHeaders: map[string]string{"x-user-id": "user-1", "x-user-name": "alice", "x-user-email": "alice@example.com",
				"x-user-roles": "orders-api:writer,user", "x-user-issuer": st.idp.Issuer()},
		},
		{
			name:   "allow ES256, roles header from realm roles, scheme case-insensitive",
			req:    checkRequest("GET", "API.example.com:443", "/api/admin/users", map[string]string{"authorization": "bearer " + aliceEC}),
			status: 200, code: code.Code_OK,
			setHeaders: map[string]string{"x-user-id": "user-1", "x-user-name": "alice", "x-user-email": "alice@example.com",
				"x-user-roles": "admin,user", "x-user-issuer": st.idp.Issuer()},
		},
		{
			name:   "token from cookie",
			req:    checkRequest("GET", "h", "/api/x", map[string]string{"cookie": "theme=dark; access_token=" + alice}),
			status: 200, code: code.Code_OK,
			setHeaders: map[string]string{"x-user-id": "user-1", "x-user-name": "alice", "x-user-email": "alice@example.com",
				"x-user-roles": "orders-api:writer,user", "x-user-issuer": st.idp.Issuer()},
		},
		{
			name:   "public route anonymous: every identity header removed",
			req:    checkRequest("GET", "h", "/healthz", map[string]string{"x-user-id": "spoofed"}),
			status: 200, code: code.Code_OK,
			remove: []string{"x-user-email", "x-user-id", "x-user-issuer", "x-user-name", "x-user-roles"},
		},
		{
			name:   "no token",
			req:    checkRequest("GET", "h", "/api/orders/1", nil),
			status: 401, code: code.Code_UNAUTHENTICATED, www: `Bearer realm="portcullis"`,
			body: `{"error":"unauthorized","error_description":"a bearer token is required"}`,
		},
		{
			name:   "expired",
			req:    checkRequest("GET", "h", "/api/orders/1", map[string]string{"authorization": "Bearer " + expired}),
			status: 401, code: code.Code_UNAUTHENTICATED, www: invalid("the access token has expired"),
			body: `{"error":"invalid_token","error_description":"the access token has expired"}`,
		},
		{
			name:   "bad signature",
			req:    checkRequest("GET", "h", "/api/orders/1", map[string]string{"authorization": "Bearer " + tampered}),
			status: 401, code: code.Code_UNAUTHENTICATED, www: invalid("the access token signature is invalid"),
			body: `{"error":"invalid_token","error_description":"the access token signature is invalid"}`,
		},
		{
			name:   "wrong audience",
			req:    checkRequest("GET", "h", "/api/orders/1", map[string]string{"authorization": "Bearer " + wrongAud}),
			status: 401, code: code.Code_UNAUTHENTICATED, www: invalid("the access token is not meant for this service"),
			body: `{"error":"invalid_token","error_description":"the access token is not meant for this service"}`,
		},
		{
			name:   "ID token refused",
			req:    checkRequest("GET", "h", "/api/orders/1", map[string]string{"authorization": "Bearer " + idToken}),
			status: 401, code: code.Code_UNAUTHENTICATED, www: invalid("the access token is invalid"),
			body: `{"error":"invalid_token","error_description":"the access token is invalid"}`,
		},
		{
			name:   "issuer with a trailing slash is another issuer",
			req:    checkRequest("GET", "h", "/api/orders/1", map[string]string{"authorization": "Bearer " + otherIssuer}),
			status: 401, code: code.Code_UNAUTHENTICATED, www: invalid("the access token issuer is not trusted"),
			body: `{"error":"invalid_token","error_description":"the access token issuer is not trusted"}`,
		},
		{
			name:   "garbage token",
			req:    checkRequest("GET", "h", "/api/orders/1", map[string]string{"authorization": "Bearer not.a.jwt"}),
			status: 401, code: code.Code_UNAUTHENTICATED, www: invalid("the access token is invalid"),
			body: `{"error":"invalid_token","error_description":"the access token is invalid"}`,
		},
		{
			name:   "missing role",
			req:    checkRequest("GET", "api.example.com", "/api/admin/users", map[string]string{"authorization": "Bearer " + alice}),
			status: 403, code: code.Code_PERMISSION_DENIED,
			body: `{"error":"access_denied","error_description":"the access token does not grant this request"}`,
		},
		{
			name:   "missing scope",
			req:    checkRequest("POST", "h", "/api/orders/7", map[string]string{"authorization": "Bearer " + noScope}),
			status: 403, code: code.Code_PERMISSION_DENIED,
			www:  `Bearer realm="portcullis", error="insufficient_scope", error_description="the access token lacks a required scope", scope="orders:write"`,
			body: `{"error":"insufficient_scope","error_description":"the access token lacks a required scope"}`,
		},
		{
			name:   "no rule",
			req:    checkRequest("GET", "h", "/other", map[string]string{"authorization": "Bearer " + alice}),
			status: 403, code: code.Code_PERMISSION_DENIED,
			body: `{"error":"access_denied","error_description":"no rule allows this request"}`,
		},
		{
			name:   "ambiguous path",
			req:    checkRequest("GET", "h", "/api/a%2fb", map[string]string{"authorization": "Bearer " + alice}),
			status: 400, code: code.Code_INVALID_ARGUMENT,
			body: `{"error":"invalid_request","error_description":"the request path is malformed or ambiguous"}`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := st.client.Check(ctx, c.req)
			if err != nil {
				t.Fatalf("Check returned a gRPC error: %v", err)
			}
			if got := code.Code(resp.GetStatus().GetCode()); got != c.code {
				t.Errorf("status code = %v, want %v", got, c.code)
			}
			if c.status == 200 {
				ok := resp.GetOkResponse()
				if ok == nil {
					t.Fatalf("want ok_response, got %v", resp)
				}
				got := headerMap(ok.GetHeaders())
				want := c.setHeaders
				if want == nil {
					want = map[string]string{}
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("headers\n got %v\nwant %v", got, want)
				}
				remove := slices.Clone(ok.GetHeadersToRemove())
				slices.Sort(remove)
				if !slices.Equal(remove, c.remove) {
					t.Errorf("headers_to_remove = %v, want %v", remove, c.remove)
				}
				for name := range got {
					if slices.Contains(remove, name) {
						t.Errorf("%s is both set and removed: Envoy would drop it", name)
					}
				}
				return
			}
			den := resp.GetDeniedResponse()
			if den == nil {
				t.Fatalf("want denied_response, got %v", resp)
			}
			if int(den.GetStatus().GetCode()) != c.status {
				t.Errorf("http status = %d, want %d", den.GetStatus().GetCode(), c.status)
			}
			h := headerMap(den.GetHeaders())
			if h["www-authenticate"] != c.www {
				t.Errorf("www-authenticate = %q, want %q", h["www-authenticate"], c.www)
			}
			if h["content-type"] != "application/json" {
				t.Errorf("content-type = %q", h["content-type"])
			}
			if den.GetBody() != c.body {
				t.Errorf("body = %s, want %s", den.GetBody(), c.body)
			}
			if strings.Contains(den.GetBody(), alice[:20]) {
				t.Error("the deny body echoes the token")
			}
		})
	}

	t.Run("dynamic metadata", func(t *testing.T) {
		resp, err := st.client.Check(ctx, checkRequest("GET", "h", "/api/x", map[string]string{"authorization": "Bearer " + alice}))
		if err != nil {
			t.Fatal(err)
		}
		md := resp.GetDynamicMetadata().AsMap()["portcullis"].(map[string]any)
		if md["sub"] != "user-1" || md["issuer"] != st.idp.Issuer() || md["rule"] != "api" || md["roles"] != "orders-api:writer,user" {
			t.Errorf("metadata = %v", md)
		}
	})

	t.Run("dry-run rule allows and counts the would-be deny", func(t *testing.T) {
		resp, err := st.client.Check(ctx, checkRequest("GET", "h", "/api/reports/q1", map[string]string{"authorization": "Bearer " + alice}))
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetOkResponse() == nil {
			t.Fatalf("dry-run rule denied: %v", resp)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get(st.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		text := string(body)
		for _, want := range []string{
			`portcullis_decisions_total{decision="allow",front="grpc",reason="ok"} 4`,
			`portcullis_decisions_total{decision="allow",front="grpc",reason="forbidden"} 1`,
			`portcullis_decisions_total{decision="allow",front="grpc",reason="public"} 1`,
			`portcullis_decisions_total{decision="deny",front="grpc",reason="no_token"} 1`,
			`portcullis_decisions_total{decision="deny",front="grpc",reason="expired"} 1`,
			`portcullis_decisions_total{decision="deny",front="grpc",reason="bad_signature"} 1`,
			`portcullis_decisions_total{decision="deny",front="grpc",reason="wrong_audience"} 1`,
			`portcullis_decisions_total{decision="deny",front="grpc",reason="unknown_issuer"} 1`,
			`portcullis_decisions_total{decision="deny",front="grpc",reason="invalid_token"} 2`,
			`portcullis_decisions_total{decision="deny",front="grpc",reason="forbidden"} 1`,
			`portcullis_decisions_total{decision="deny",front="grpc",reason="insufficient_scope"} 1`,
			`portcullis_decisions_total{decision="deny",front="grpc",reason="no_rule"} 1`,
			`portcullis_decisions_total{decision="deny",front="grpc",reason="bad_request"} 1`,
			`portcullis_dry_run_decisions_total{decision="deny",reason="forbidden",rule="reports"} 1`,
			`portcullis_check_duration_seconds_count{decision="allow",front="grpc"} 6`,
			`portcullis_check_duration_seconds_count{decision="deny",front="grpc"} 11`,
			`portcullis_config_reloads_total{result="success"} 0`,
			`portcullis_config_last_reload_successful 1`,
			`portcullis_ready 1`,
		} {
			if !strings.Contains(text, want+"\n") {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if n := gathered(t, st, "portcullis_jwks_keys"); n != 2 {
			t.Errorf("portcullis_jwks_keys = %v, want 2", n)
		}
	})

	t.Run("health", func(t *testing.T) {
		// startStack waited for /readyz: gRPC health says the same, without delay.
		for _, name := range []string{"", "envoy.service.auth.v3.Authorization"} {
			resp, err := healthpb.NewHealthClient(st.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: name})
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("health %q = %v, %v; want SERVING", name, resp.GetStatus(), err)
			}
		}
	})
}

// gathered sums every series of a metric family from the server's registry.
func gathered(t *testing.T, st *stack, name string) float64 {
	t.Helper()
	families, err := st.srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return sum
}

// TestNeverLoadedFailsClosed: an issuer whose keys never loaded answers 503 (as a
// CheckResponse, never a gRPC error) and /readyz is not ready.
func TestNeverLoadedFailsClosed(t *testing.T) {
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer dead.Close()
	path := filepath.Join(t.TempDir(), "portcullis.yaml")
	cfg := fmt.Sprintf(testConfig, dead.URL+"/realms/demo", 0)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := runServer(t, path)
	conn, err := grpc.NewClient(srv.Addr("grpc").String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Any well-formed token of that issuer: the keys to check it are not there.
	idp, _ := devidp.New()
	idp.SetIssuer(dead.URL + "/realms/demo")
	tok, _ := idp.Mint(jwa.RS256, devidp.Claims{"aud": "orders-api", "sub": "x"}, time.Minute)
	resp, err := authv3.NewAuthorizationClient(conn).Check(context.Background(),
		checkRequest("GET", "h", "/api/x", map[string]string{"authorization": "Bearer " + tok}))
	if err != nil {
		t.Fatalf("Check returned a gRPC error (an outage to Envoy): %v", err)
	}
	den := resp.GetDeniedResponse()
	if den.GetStatus().GetCode() != 503 || code.Code(resp.GetStatus().GetCode()) != code.Code_UNAVAILABLE {
		t.Fatalf("want 503 UNAVAILABLE, got %v", resp)
	}
	if den.GetBody() != `{"error":"temporarily_unavailable","error_description":"the identity provider's keys are not available yet"}` {
		t.Errorf("body = %s", den.GetBody())
	}
	r, err := http.Get("http://" + srv.Addr("admin").String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	// The second line says why; the count of failures depends on timing (retries every ~1s).
	first, second, _ := strings.Cut(string(body), "\n")
	wantSecond := regexp.MustCompile(`^` + regexp.QuoteMeta(dead.URL+"/realms/demo: the last fetch failed (") + `[1-9][0-9]* in a row\): ` +
		regexp.QuoteMeta("jwks: discovery: GET "+dead.URL+"/realms/demo/.well-known/openid-configuration: HTTP 502") + "\n$")
	if r.StatusCode != 503 || first != "not ready: no usable keys yet for "+dead.URL+"/realms/demo" || !wantSecond.MatchString(second) {
		t.Errorf("/readyz = %d %q", r.StatusCode, body)
	}
	// A public route still answers without keys.
	resp, err = authv3.NewAuthorizationClient(conn).Check(context.Background(), checkRequest("GET", "h", "/healthz", nil))
	if err != nil || resp.GetOkResponse() == nil {
		t.Errorf("public route: %v %v", resp, err)
	}
}
