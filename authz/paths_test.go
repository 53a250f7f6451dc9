package authz

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/reason"
	"github.com/portcullis-authz/portcullis/rules"
)

// pathsEngines returns two engines with a public rule, an admin rule and a catch-all api rule
// that any valid token passes, one reading paths by default and one stripping path parameters,
// and a token whose roles are user and others, never admin.
func pathsEngines(t *testing.T) (map[rules.PathOptions]*Engine, string) {
	t.Helper()
	v, idp := benchVerifier(t)
	set, err := rules.Compile([]rules.Spec{
		{Name: "public", Match: rules.MatchSpec{Paths: []string{"/public/**"}}, Public: true},
		{Name: "admin", Match: rules.MatchSpec{Paths: []string{"/api/admin/**"}}, Require: rules.RequireSpec{AnyRoles: []string{"admin"}}},
		{Name: "api", Match: rules.MatchSpec{Paths: []string{"/api/**"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	engines := map[rules.PathOptions]*Engine{}
	for _, o := range []rules.PathOptions{{}, {StripMatrixParameters: true}} {
		engines[o] = NewEngine(Options{Rules: set, Verifier: v, Sources: []config.TokenSource{{Header: "authorization", Prefix: "Bearer "}},
			IdentityHeaders: attributes(t, map[string]string{"x-user-id": "sub"}), ForwardToken: true, Paths: o})
	}
	return engines, keycloakLike(t, idp, jwa.RS256)
}

const (
	paramDetail   = `path: path parameter (";") in a segment, which servlet containers and Spring strip before routing and other servers keep (to match without it, set paths.matrix_parameters: strip) at byte 10`
	notUTF8Detail = `path: bytes that are not valid UTF-8 once decoded (overlong form, surrogate, code point above U+10FFFF, stray or missing continuation byte), which some servers decode anyway ("%C0%AE" as ".") at byte 8`
	badBody       = `{"error":"invalid_request","error_description":"the request path is malformed or ambiguous"}`
)

// TestDecideAmbiguousPaths: a path parameter or bytes that are not UTF-8 once decoded are a 400
// bad_request before any rule is chosen; with paths.matrix_parameters: strip the parameter is
// removed and the rule for the path the upstream serves applies.
func TestDecideAmbiguousPaths(t *testing.T) {
	strip := rules.PathOptions{StripMatrixParameters: true}
	engines, tok := pathsEngines(t)
	for _, c := range []struct {
		name   string
		opts   rules.PathOptions
		path   string
		token  bool
		status int
		reason reason.Code
		rule   string
		detail string
	}{
		{"parameter hides the admin segment", rules.PathOptions{}, "/api/admin;x/users", true, 400, reason.BadRequest, "", paramDetail},
		{"parameter on the last segment", rules.PathOptions{}, "/api/orders;jsessionid=1", true, 400, reason.BadRequest, "", `path: path parameter (";") in a segment, which servlet containers and Spring strip before routing and other servers keep (to match without it, set paths.matrix_parameters: strip) at byte 11`},
		{"overlong dots on a public rule", rules.PathOptions{}, "/public/%c0%ae%c0%ae/api/admin/users", false, 400, reason.BadRequest, "", notUTF8Detail},
		{"overlong dots with a token", rules.PathOptions{}, "/public/%c0%ae%c0%ae/api/admin/users", true, 400, reason.BadRequest, "", notUTF8Detail},
		{"surrogate", rules.PathOptions{}, "/public/%ed%a0%80", false, 400, reason.BadRequest, "", `path: bytes that are not valid UTF-8 once decoded (overlong form, surrogate, code point above U+10FFFF, stray or missing continuation byte), which some servers decode anyway ("%C0%AE" as ".") at byte 8`},
		{"encoded semicolon is a name", rules.PathOptions{}, "/api/admin%3Bx/users", true, 200, reason.OK, "api", ""},
		{"admin without parameter", rules.PathOptions{}, "/api/admin/users", true, 403, reason.Forbidden, "admin", `missing role "admin"`},
		{"valid UTF-8 on a public rule", rules.PathOptions{}, "/public/caf%C3%A9", false, 200, reason.Public, "public", ""},
		{"strip: the admin rule applies", strip, "/api/admin;x/users", true, 403, reason.Forbidden, "admin", `missing role "admin"`},
		{"strip: several parameters", strip, "/api/admin;a=1;b=2/users;jsessionid=1", true, 403, reason.Forbidden, "admin", `missing role "admin"`},
		{"strip: parameters elsewhere", strip, "/api;v=2/orders", true, 200, reason.OK, "api", ""},
		{"strip: dot segment with parameters", strip, "/public/..;x/api/admin/users", false, 400, reason.BadRequest, "", `path: dot segment with path parameters (".;" or "..;") is read as a dot segment by some servers at byte 8`},
		{"strip: overlong dots", strip, "/public/%c0%ae%c0%ae/api/admin/users", false, 400, reason.BadRequest, "", notUTF8Detail},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := engines[c.opts]
			r := &Request{Method: "GET", Host: "api.example.com", Path: c.path, Headers: map[string]string{}}
			if c.token {
				r.Headers["authorization"] = "Bearer " + tok
			}
			d := e.Decide(context.Background(), r)
			if d.Status != c.status || d.Reason != c.reason || d.Rule != c.rule || d.Allow != (c.status == 200) {
				t.Errorf("%s: status %d reason %s rule %q allow %v; want %d %s %q", c.path, d.Status, d.Reason, d.Rule, d.Allow, c.status, c.reason, c.rule)
			}
			if c.detail != "" && d.Detail != c.detail {
				t.Errorf("detail\n got: %s\nwant: %s", d.Detail, c.detail)
			}
			if c.status == 400 && string(d.Body) != badBody {
				t.Errorf("body %s, want %s", d.Body, badBody)
			}
		})
	}
}

// TestFrontsReadPathsAlike: the gRPC and the HTTP forward-auth fronts answer with the engine's
// path options, and count the 400 as bad_request.
func TestFrontsReadPathsAlike(t *testing.T) {
	engines, tok := pathsEngines(t)
	for _, c := range []struct {
		name   string
		opts   rules.PathOptions
		status int
		reason reason.Code
	}{
		{"reject", rules.PathOptions{}, 400, reason.BadRequest},
		{"strip", rules.PathOptions{StripMatrixParameters: true}, 403, reason.Forbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := engines[c.opts]
			m := NewMetrics(prometheus.NewRegistry())
			a := NewAuthorizer(e, m, nil)

			resp, err := authv3.NewAuthorizationClient(startGRPC(t, a)).Check(context.Background(), envoyCheck(&authv3.AttributeContext_HttpRequest{
				Method: "GET", Host: "api.example.com", Path: "/api/admin;x/users",
				Headers: map[string]string{"authorization": "Bearer " + tok}}, nil))
			if err != nil {
				t.Fatal(err)
			}
			if got := int(resp.GetDeniedResponse().GetStatus().GetCode()); got != c.status {
				t.Errorf("grpc: status %d, want %d", got, c.status)
			}

			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header.Set("X-Forwarded-Method", "GET")
			req.Header.Set("X-Forwarded-Host", "api.example.com")
			req.Header.Set("X-Forwarded-Uri", "/api/admin;x/users")
			req.Header.Set("Authorization", "Bearer "+tok)
			w := httptest.NewRecorder()
			NewHTTPHandler(a, config.ForwardAuth{TrustedHeaders: []string{"x-forwarded"}}).ServeHTTP(w, req)
			if w.Code != c.status {
				t.Errorf("http: status %d, want %d", w.Code, c.status)
			}
			for _, front := range []string{FrontGRPC, FrontHTTP} {
				if n := testutil.ToFloat64(m.decisions.WithLabelValues(front, "deny", string(c.reason))); n != 1 {
					t.Errorf("%s: %s decisions = %v, want 1", front, c.reason, n)
				}
			}
		})
	}
}
