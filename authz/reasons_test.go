package authz

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/internal/devidp"
	"github.com/portcullis-authz/portcullis/jwks"
	"github.com/portcullis-authz/portcullis/reason"
	"github.com/portcullis-authz/portcullis/rules"
	"github.com/portcullis-authz/portcullis/token"
)

// notLoadedKeys is the key set of an issuer whose keys were never loaded.
type notLoadedKeys struct{}

func (notLoadedKeys) Lookup(context.Context, string, jwa.SignatureAlgorithm) ([]jwks.Key, error) {
	return nil, jwks.ErrNotLoaded
}

func (notLoadedKeys) Contains(string) bool { return false }

// lockedBuffer is a log destination the gRPC server's goroutines and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the log lines written since the last call, decoded.
func (l *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	l.b.Reset()
	return out
}

// decisionSeries returns every portcullis_decisions_total series of reg, by front, decision
// and reason.
func decisionSeries(t *testing.T, reg *prometheus.Registry) map[[3]string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[[3]string]float64{}
	for _, f := range families {
		if f.GetName() != "portcullis_decisions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			out[[3]string{l["front"], l["decision"], l["reason"]}] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestEveryReasonOnBothFronts walks every row of the reason table with a request the real
// engine answers with that reason, on the gRPC front (a real loopback server, Envoy's generated
// client) and on the HTTP forward-auth front: the status, the gRPC code and message, the body,
// content-type and WWW-Authenticate, the log line's reason, and the decision series, which
// exist at zero before the first request and count one per front after it. The expected
// answers are written out here, not taken from the table, so a change of the table or of
// deny() that changes an answer fails this test. A row added without a case here fails too.
func TestEveryReasonOnBothFronts(t *testing.T) {
	const (
		issuer = benchIssuer
		down   = "https://down.example.com/realms/x"
	)
	idp, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	idp.SetIssuer(issuer)
	other, err := devidp.New() // keys nobody configured
	if err != nil {
		t.Fatal(err)
	}
	v, err := token.NewVerifier(token.Options{
		Issuers: []token.IssuerConfig{
			{Issuer: issuer, Keys: &switchableKeys{keys: publicKeys(t, idp)}, Audiences: []string{"orders-api"}, Algorithms: []string{"RS256"},
				Leeway: 30 * time.Second, RolesClaims: claimPaths(t, "realm_access.roles"), TokenTypes: []string{"Bearer"}},
			{Issuer: down, Keys: notLoadedKeys{}, Audiences: []string{"orders-api"}, Algorithms: []string{"RS256"},
				Leeway: 30 * time.Second, RolesClaims: claimPaths(t, "realm_access.roles"), TokenTypes: []string{"Bearer"}},
		},
		MaxBytes: 16384,
	})
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile([]rules.Spec{
		{Name: "health", Match: rules.MatchSpec{Paths: []string{"/healthz"}}, Public: true},
		{Name: "admin", Match: rules.MatchSpec{Paths: []string{"/api/admin/**"}}, Require: rules.RequireSpec{AnyRoles: []string{"admin"}}},
		{Name: "purge", Match: rules.MatchSpec{Paths: []string{"/api/purge/**"}}, Require: rules.RequireSpec{Scopes: []string{"orders:delete", "orders:purge"}}},
		{Name: "payments", Match: rules.MatchSpec{Paths: []string{"/api/payments/**"}}, Require: rules.RequireSpec{Active: true}},
		{Name: "api", Match: rules.MatchSpec{Paths: []string{"/api/**"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	introspection := newIDPEndpoint(t)
	introspection.set("malformed")
	e := NewEngine(Options{Rules: set, Verifier: v, Sources: []config.TokenSource{{Header: "authorization", Prefix: "Bearer "}},
		IdentityHeaders: attributes(t, map[string]string{"x-user-id": "sub"}), ForwardToken: true,
		Introspectors: map[string]Introspector{issuer: newTestIntrospector(t, introspection, nil)}})

	mint := func(p *devidp.IdP, iss string, claims devidp.Claims, ttl time.Duration) string {
		t.Helper()
		base := devidp.Claims{"sub": "alice", "aud": "orders-api", "typ": "Bearer", "scope": "openid orders:write",
			"realm_access": map[string]any{"roles": []string{"user"}}}
		for k, v := range claims {
			base[k] = v
		}
		p.SetIssuer(iss)
		tok, err := p.Mint(jwa.RS256, base, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := mint(idp, issuer, nil, time.Hour)
	parts := strings.Split(good, ".")
	forged := parts[0] + "." + strings.Split(mint(idp, issuer, devidp.Claims{"sub": "admin"}, time.Hour), ".")[1] + "." + parts[2]

	invalid := func(description string) string {
		return `Bearer realm="portcullis", error="invalid_token", error_description="` + description + `"`
	}
	body := func(code, description string) string {
		return `{"error":"` + code + `","error_description":"` + description + `"}`
	}
	cases := []struct {
		reason reason.Code
		path   string
		token  string // "" = none
		status int
		code   code.Code
		body   string // "" = an allow
		www    string // "" = no WWW-Authenticate
	}{
		{reason.OK, "/api/orders", good, 200, code.Code_OK, "", ""},
		{reason.Public, "/healthz", "", 200, code.Code_OK, "", ""},
		{reason.NoRule, "/elsewhere", good, 403, code.Code_PERMISSION_DENIED, body("access_denied", "no rule allows this request"), ""},
		{reason.NoToken, "/api/orders", "", 401, code.Code_UNAUTHENTICATED, body("unauthorized", "a bearer token is required"), `Bearer realm="portcullis"`},
		{reason.InvalidToken, "/api/orders", "not-a-jwt", 401, code.Code_UNAUTHENTICATED,
			body("invalid_token", "the access token is invalid"), invalid("the access token is invalid")},
		{reason.Expired, "/api/orders", mint(idp, issuer, nil, -time.Hour), 401, code.Code_UNAUTHENTICATED,
			body("invalid_token", "the access token has expired"), invalid("the access token has expired")},
		{reason.BadSignature, "/api/orders", forged, 401, code.Code_UNAUTHENTICATED,
			body("invalid_token", "the access token signature is invalid"), invalid("the access token signature is invalid")},
		{reason.UnknownIssuer, "/api/orders", mint(idp, "https://elsewhere.example.com", nil, time.Hour), 401, code.Code_UNAUTHENTICATED,
			body("invalid_token", "the access token issuer is not trusted"), invalid("the access token issuer is not trusted")},
		{reason.UnknownKey, "/api/orders", mint(other, issuer, nil, time.Hour), 401, code.Code_UNAUTHENTICATED,
			body("invalid_token", "the access token signing key is unknown"), invalid("the access token signing key is unknown")},
		{reason.WrongAudience, "/api/orders", mint(idp, issuer, devidp.Claims{"aud": "account"}, time.Hour), 401, code.Code_UNAUTHENTICATED,
			body("invalid_token", "the access token is not meant for this service"), invalid("the access token is not meant for this service")},
		// A DPoP-bound token with the DPoP scheme and no proof (dpopScheme below).
		{reason.InvalidDPoPProof, "/api/orders", mint(idp, issuer, devidp.Claims{"cnf": map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}, time.Hour), 401, code.Code_UNAUTHENTICATED,
			body("invalid_dpop_proof", "the DPoP proof is invalid"),
			`DPoP error="invalid_dpop_proof", error_description="the DPoP proof is invalid", algs="RS256", Bearer realm="portcullis"`},
		{reason.Forbidden, "/api/admin/users", good, 403, code.Code_PERMISSION_DENIED,
			body("access_denied", "the access token does not grant this request"), ""},
		{reason.InsufficientScope, "/api/purge/all", good, 403, code.Code_PERMISSION_DENIED,
			body("insufficient_scope", "the access token lacks a required scope"),
			`Bearer realm="portcullis", error="insufficient_scope", error_description="the access token lacks a required scope", scope="orders:delete orders:purge"`},
		{reason.BadRequest, "/api/a%2Fb", good, 400, code.Code_INVALID_ARGUMENT,
			body("invalid_request", "the request path is malformed or ambiguous"), ""},
		{reason.Unavailable, "/api/orders", mint(other, down, nil, time.Hour), 503, code.Code_UNAVAILABLE,
			body("temporarily_unavailable", "the identity provider's keys are not available yet"), ""},
		{reason.IntrospectionUnavailable, "/api/payments/1", good, 503, code.Code_UNAVAILABLE,
			body("temporarily_unavailable", "the identity provider cannot confirm the token now"), ""},
	}
	// The cases whose token comes with the DPoP scheme rather than Bearer.
	scheme := map[reason.Code]string{reason.InvalidDPoPProof: "DPoP "}
	covered := map[reason.Code]bool{}
	for _, c := range cases {
		covered[c.reason] = true
	}
	for _, a := range reason.All() {
		if !covered[a.Code] {
			t.Errorf("%s: a row of the reason table without a case here", a.Code)
		}
	}

	reg := prometheus.NewRegistry()
	logs := &lockedBuffer{}
	a := NewAuthorizer(e, NewMetrics(reg), slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	// Every series exists at zero before the first decision, with the decision its row implies.
	start := decisionSeries(t, reg)
	for _, c := range cases {
		for _, front := range []string{FrontGRPC, FrontHTTP} {
			dec := "deny"
			if c.body == "" {
				dec = "allow"
			}
			if n, ok := start[[3]string{front, dec, string(c.reason)}]; !ok || n != 0 {
				t.Errorf("%s: series {%s %s %s} at start = %v, exists %v", c.reason, front, dec, c.reason, n, ok)
			}
		}
	}
	if len(start) != 2*len(reason.All()) {
		t.Errorf("%d decision series at start, want %d", len(start), 2*len(reason.All()))
	}

	client := authv3.NewAuthorizationClient(startGRPC(t, a))
	fwd := NewHTTPHandler(a, config.ForwardAuth{})

	for _, c := range cases {
		t.Run(string(c.reason), func(t *testing.T) {
			headers := map[string]string{}
			if c.token != "" {
				headers["authorization"] = cmp.Or(scheme[c.reason], "Bearer ") + c.token
			}
			// gRPC front.
			check := envoyCheck(&authv3.AttributeContext_HttpRequest{Method: "GET", Host: "api.example.com", Path: c.path, Headers: headers}, nil)
			resp, err := client.Check(context.Background(), check)
			if err != nil {
				t.Fatal(err)
			}
			r := RequestFromCheck(check)
			if want := CheckResponse(e.Decide(context.Background(), &r)); !proto.Equal(resp, want) {
				t.Errorf("grpc: the wire answer differs from CheckResponse\n got %v\nwant %v", resp, want)
			}
			if got := code.Code(resp.GetStatus().GetCode()); got != c.code {
				t.Errorf("grpc: code %v, want %v", got, c.code)
			}
			if c.body == "" {
				if resp.GetOkResponse() == nil || resp.GetStatus().GetMessage() != "" {
					t.Errorf("grpc: not an allow: %v", resp)
				}
			} else {
				den := resp.GetDeniedResponse()
				if resp.GetStatus().GetMessage() != string(c.reason) || int(den.GetStatus().GetCode()) != c.status || den.GetBody() != c.body {
					t.Errorf("grpc: message %q status %d body %s\nwant %q %d %s", resp.GetStatus().GetMessage(), den.GetStatus().GetCode(), den.GetBody(), c.reason, c.status, c.body)
				}
				want := []string{"content-type: application/json"}
				if c.www != "" {
					want = append(want, "www-authenticate: "+c.www)
				}
				var got []string
				for _, h := range den.GetHeaders() {
					if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
						t.Errorf("grpc: header %s appends", h.GetHeader().GetKey())
					}
					got = append(got, h.GetHeader().GetKey()+": "+h.GetHeader().GetValue())
				}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("grpc: headers\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			}

			// HTTP forward-auth front: the request line is the original request.
			req := httptest.NewRequest(http.MethodGet, c.path, nil)
			req.Host = "api.example.com"
			if c.token != "" {
				req.Header.Set("Authorization", cmp.Or(scheme[c.reason], "Bearer ")+c.token)
			}
			w := httptest.NewRecorder()
			fwd.ServeHTTP(w, req)
			if w.Code != c.status || w.Body.String() != c.body {
				t.Errorf("http: %d %s, want %d %s", w.Code, w.Body.String(), c.status, c.body)
			}
			wantType := "application/json"
			if c.body == "" {
				wantType = ""
			}
			if got := w.Header().Get("Content-Type"); got != wantType {
				t.Errorf("http: Content-Type %q, want %q", got, wantType)
			}
			if got := w.Header().Values("Www-Authenticate"); strings.Join(got, "\n") != c.www {
				t.Errorf("http: WWW-Authenticate %q, want %q", got, c.www)
			}

			// One log line per front, with the reason and status.
			lines := logs.lines(t)
			if len(lines) != 2 {
				t.Fatalf("%d log lines, want 2: %v", len(lines), lines)
			}
			for i, front := range []string{FrontGRPC, FrontHTTP} {
				if l := lines[i]; l["reason"] != string(c.reason) || l["status"] != float64(c.status) || l["front"] != front {
					t.Errorf("log line %v, want front %s reason %s status %d", l, front, c.reason, c.status)
				}
			}
		})
	}

	// Each case counted once per front, under its own reason and nowhere else.
	after := decisionSeries(t, reg)
	for k, n := range after {
		want := 0.0
		for _, c := range cases {
			dec := "deny"
			if c.body == "" {
				dec = "allow"
			}
			if k == [3]string{FrontGRPC, dec, string(c.reason)} || k == [3]string{FrontHTTP, dec, string(c.reason)} {
				want = 1
			}
		}
		if n != want {
			t.Errorf("series %v = %v, want %v", k, n, want)
		}
	}
	if len(after) != len(start) {
		t.Errorf("%d series after, %d at start: a reason outside the table was counted", len(after), len(start))
	}
}

// TestDenyFailsClosed: deny() asked for a code that is not a deny's (a programming mistake)
// answers forbidden, under forbidden's code, rather than a 200 or a status 0.
func TestDenyFailsClosed(t *testing.T) {
	e := NewEngine(Options{})
	for _, c := range []reason.Code{reason.OK, reason.Public, "", "teapot"} {
		d := e.deny(c, nil)
		if d.Allow || d.Status != 403 || d.Reason != reason.Forbidden ||
			string(d.Body) != `{"error":"access_denied","error_description":"the access token does not grant this request"}` {
			t.Errorf("deny(%q) = %d %s %s", c, d.Status, d.Reason, d.Body)
		}
	}
}
