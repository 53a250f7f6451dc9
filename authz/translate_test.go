package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/reason"
	"github.com/portcullis-authz/portcullis/token"
)

// TestRequestFromCheck: the wire parser and the reference translation both read these
// CheckRequests into these Requests.
func TestRequestFromCheck(t *testing.T) {
	cases := []struct {
		name string
		http *authv3.AttributeContext_HttpRequest
		ext  map[string]string
		src  *authv3.AttributeContext_Peer
		want Request
	}{
		{
			name: "headers map",
			http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: "api.example.com", Path: "/a?b=1", Headers: map[string]string{"authorization": "Bearer x"}},
			want: Request{Method: "GET", Host: "api.example.com", Path: "/a?b=1", Headers: map[string]string{"authorization": "Bearer x"}},
		},
		{
			name: "raw header_map, repeated headers joined, keys lower-cased",
			http: &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/p", HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				{Key: ":authority", RawValue: []byte("h.example.com")}, {Key: "X-A", RawValue: []byte("1")}, {Key: "x-a", RawValue: []byte("2")},
			}}},
			want: Request{Method: "POST", Host: "h.example.com", Path: "/p", Headers: map[string]string{":authority": "h.example.com", "x-a": "1,2"}},
		},
		{
			name: "method, host and path from the pseudo-headers; header_map ignored beside headers",
			http: &authv3.AttributeContext_HttpRequest{Headers: map[string]string{":method": "PUT", ":authority": "a.example.com", ":path": "/x", "host": "b.example.com"},
				HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "x-ignored", Value: "1"}}}},
			ext: map[string]string{"other": "x"},
			want: Request{Method: "PUT", Host: "a.example.com", Path: "/x", Headers: map[string]string{":method": "PUT", ":authority": "a.example.com", ":path": "/x", "host": "b.example.com"},
				Context: map[string]string{"other": "x"}},
		},
		{
			name: "header_map: value before raw_value, an empty entry kept",
			http: &authv3.AttributeContext_HttpRequest{HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				{Key: "x-both", Value: "v", RawValue: []byte("raw")}, {Key: "x-empty"}, {Key: "host", RawValue: []byte("h")}}}},
			want: Request{Host: "h", Headers: map[string]string{"x-both": "v", "x-empty": "", "host": "h"}},
		},
		{
			name: "empty",
			want: Request{Headers: map[string]string{}},
		},
		{
			name: "host from the host header, rule from the context extension",
			http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", Headers: map[string]string{"host": "h:8080"}},
			ext:  map[string]string{"portcullis-rule": "docs"},
			want: Request{Method: "GET", Host: "h:8080", Path: "/", Headers: map[string]string{"host": "h:8080"}, RuleName: "docs",
				Context: map[string]string{"portcullis-rule": "docs"}},
		},
		{
			name: "the source's socket address; its port and the other peer fields are not read",
			http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", Headers: map[string]string{"host": "h"}},
			src: &authv3.AttributeContext_Peer{Principal: "spiffe://x", Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: "2001:db8::7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 443}}}}},
			want: Request{Method: "GET", Host: "h", Path: "/", Headers: map[string]string{"host": "h"}, SourceAddress: "2001:db8::7"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: c.src,
				Request: &authv3.AttributeContext_Request{Http: c.http}, ContextExtensions: c.ext}}
			if got := RequestFromCheck(req); !reflect.DeepEqual(got, c.want) {
				t.Errorf("reference:\n got %+v\nwant %+v", got, c.want)
			}
			b, err := proto.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			var got Request
			if err := ParseCheckRequest(b, &got); err != nil || !reflect.DeepEqual(got, c.want) {
				t.Errorf("wire: %v\n got %+v\nwant %+v", err, got, c.want)
			}
		})
	}
}

// servedResponse is the CheckResponse the gRPC front sends for d, decoded.
func servedResponse(t *testing.T, d *Decision) *authv3.CheckResponse {
	t.Helper()
	var m authv3.CheckResponse
	if err := proto.Unmarshal(AppendCheckResponse(nil, d), &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func TestCheckResponseDeny(t *testing.T) {
	e := NewEngine(Options{})
	for _, c := range []struct {
		reason reason.Code
		status int
		code   code.Code
	}{
		{reason.NoToken, 401, code.Code_UNAUTHENTICATED},
		{reason.Expired, 401, code.Code_UNAUTHENTICATED},
		{reason.Forbidden, 403, code.Code_PERMISSION_DENIED},
		{reason.NoRule, 403, code.Code_PERMISSION_DENIED},
		{reason.BadRequest, 400, code.Code_INVALID_ARGUMENT},
		{reason.Unavailable, 503, code.Code_UNAVAILABLE},
	} {
		resp := servedResponse(t, e.deny(c.reason, nil))
		den := resp.GetDeniedResponse()
		if code.Code(resp.GetStatus().GetCode()) != c.code || int(den.GetStatus().GetCode()) != c.status {
			t.Errorf("%s: code %v status %d", c.reason, resp.GetStatus().GetCode(), den.GetStatus().GetCode())
		}
		if resp.GetStatus().GetMessage() != string(c.reason) {
			t.Errorf("%s: message %q", c.reason, resp.GetStatus().GetMessage())
		}
		for _, h := range den.GetHeaders() {
			if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Errorf("%s: header %s appends", c.reason, h.GetHeader().GetKey())
			}
		}
	}
	if got := string(e.deny(reason.Unavailable, nil).Body); got != `{"error":"temporarily_unavailable","error_description":"the identity provider's keys are not available yet"}` {
		t.Errorf("503 body = %s", got)
	}
}

func TestFindToken(t *testing.T) {
	e := NewEngine(Options{Sources: []config.TokenSource{{Header: "authorization", Prefix: "Bearer "}, {Cookie: "access_token"}}})
	cases := []struct {
		headers map[string]string
		want    string
		found   bool
	}{
		{map[string]string{"authorization": "Bearer abc"}, "abc", true},
		{map[string]string{"authorization": "BEARER  abc "}, "abc", true},
		{map[string]string{"authorization": "Basic abc"}, "", false},
		{map[string]string{"authorization": "Bearer "}, "", false},
		{map[string]string{"authorization": "Basic x", "cookie": "a=1; access_token=tok; b=2"}, "tok", true},
		{map[string]string{"cookie": "xaccess_token=no"}, "", false},
		{map[string]string{"cookie": `access_token="quoted"`}, "quoted", true},
		{map[string]string{"authorization": "Bearer first", "cookie": "access_token=second"}, "first", true},
	}
	for _, c := range cases {
		got, _, found := e.findToken(c.headers)
		if got != c.want || found != c.found {
			t.Errorf("%v: got %q %v, want %q %v", c.headers, got, found, c.want, c.found)
		}
	}
}

func TestIdentityHeadersAndTokenStripping(t *testing.T) {
	e := NewEngine(Options{
		Sources:         []config.TokenSource{{Header: "authorization", Prefix: "Bearer "}, {Cookie: "access_token"}},
		IdentityHeaders: attributes(t, map[string]string{"x-user-id": "sub", "x-user-roles": "roles", "x-user-email": "email", "x-groups": "groups", "x-level": "profile.level", "x-evil": "evil"}),
		ForwardToken:    false,
	})
	id := &token.Identity{Subject: "u1", Roles: []string{"a", "b"}, Claims: map[string]any{
		"groups": []any{"g1", "g2"}, "profile": map[string]any{"level": 3.0}, "evil": "x\r\nx-admin: 1",
	}}
	d := e.allow(reason.OK, e.render(id), &Request{Headers: map[string]string{"authorization": "Bearer t", "cookie": "a=1; access_token=t"}})
	if got := fmt.Sprint(d.Upstream); got != "[{x-groups g1,g2} {x-level 3} {x-user-id u1} {x-user-roles a,b} {cookie a=1}]" {
		t.Errorf("set = %s", got)
	}
	if got := fmt.Sprint(d.UpstreamRemove); got != "[x-evil x-user-email authorization]" {
		t.Errorf("remove = %s", got)
	}
	anon := e.allow(reason.Public, nil, &Request{Headers: map[string]string{"cookie": "access_token=t"}})
	if got := fmt.Sprint(anon.UpstreamRemove); got != "[x-evil x-groups x-level x-user-email x-user-id x-user-roles cookie]" {
		t.Errorf("anonymous remove = %s", got)
	}
	if got := fmt.Sprint(e.removeAll); got != "[x-evil x-groups x-level x-user-email x-user-id x-user-roles]" {
		t.Errorf("shared remove list was modified: %s", got)
	}
}

func TestRequestFromHTTP(t *testing.T) {
	both := config.ForwardAuth{TrustedHeaders: []string{"x-forwarded", "x-original"}}
	cases := []struct {
		name    string
		fa      config.ForwardAuth
		target  string
		headers map[string]string
		method  string
		want    string // method host path, or "invalid: ..." for a 400
	}{
		{"traefik/caddy", both, "/auth", map[string]string{"X-Forwarded-Method": "post", "X-Forwarded-Host": "api.example.com", "X-Forwarded-Uri": "/api/orders/1?x=1,2"}, "GET", "POST api.example.com /api/orders/1?x=1,2"},
		{"nginx", both, "/auth", map[string]string{"X-Original-URI": "/api/a", "X-Original-Method": "DELETE"}, "GET", "DELETE portcullis.local /api/a"},
		{"nginx without a method header: the subrequest's own", both, "/auth", map[string]string{"X-Original-URI": "/api/a"}, "GET", "GET portcullis.local /api/a"},
		{"both conventions agreeing", both, "/auth", map[string]string{"X-Original-URI": "/api/a", "X-Forwarded-Uri": "/api/a"}, "GET", "GET portcullis.local /api/a"},
		{"a smuggled X-Forwarded-Uri disagrees with nginx's X-Original-URI", both, "/auth", map[string]string{"X-Original-URI": "/api/admin", "X-Forwarded-Uri": "/docs/x"}, "GET", "invalid: the trusted forward-auth headers disagree about the original request (x-original says GET /api/admin)"},
		{"an untrusted convention is ignored", config.ForwardAuth{TrustedHeaders: []string{"x-original"}}, "/auth", map[string]string{"X-Original-URI": "/api/admin", "X-Forwarded-Uri": "/docs/x"}, "GET", "GET portcullis.local /api/admin"},
		{"envoy http_service: the request line", both, "/api/orders/1?q", nil, "PUT", "PUT portcullis.local /api/orders/1?q"},
		{"envoy http_service with path_prefix", config.ForwardAuth{PathPrefix: "/authz"}, "/authz/api/orders/1?q", nil, "GET", "GET portcullis.local /api/orders/1?q"},
		{"path_prefix alone is the root", config.ForwardAuth{PathPrefix: "/authz"}, "/authz?x", nil, "GET", "GET portcullis.local /?x"},
		{"path_prefix missing", config.ForwardAuth{PathPrefix: "/authz"}, "/authzx/api", nil, "GET", "invalid: the request path does not start with forward_auth.path_prefix /authz"},
		{"proxy chain: the first host", both, "/", map[string]string{"X-Forwarded-Host": "a.example.com, b.example.com", "X-Forwarded-Uri": "/"}, "GET", "GET a.example.com /"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(c.method, "http://portcullis.local"+c.target, nil)
			r.RequestURI = c.target
			for k, v := range c.headers {
				r.Header.Set(k, v)
			}
			got := RequestFromHTTP(r, c.fa)
			s := got.Method + " " + got.Host + " " + got.Path
			if got.Invalid != "" {
				s = "invalid: " + got.Invalid
			}
			if s != c.want {
				t.Errorf("got %q, want %q", s, c.want)
			}
		})
	}
}

// TestDecisionLog: one structured line per deny with rule, reason, method, host, path and
// latency, never the token nor the query; allows only at debug level.
func TestDecisionLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e, idp := benchEngine(t, 10)
	a := NewAuthorizer(e, nil, log)
	tok := keycloakLike(t, idp, "RS256")
	a.Authorize(context.Background(), FrontGRPC, &Request{Method: "GET", Host: "api.example.com", Path: "/api/admin/x?access_token=" + tok,
		Headers: map[string]string{"authorization": "Bearer " + tok}})
	a.Authorize(context.Background(), FrontGRPC, benchRequest(tok))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one line (the deny), got %d:\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"msg": "deny", "front": "grpc", "status": 403.0, "reason": "forbidden", "rule": "admin",
		"method": "GET", "host": "api.example.com", "path": "/api/admin/x", "sub": "6f1c2d7e-1b8a-4a55-9a8e-0d6c1f1f2a3b", "issuer": benchIssuer} {
		if rec[k] != want {
			t.Errorf("%s = %v, want %v", k, rec[k], want)
		}
	}
	if _, ok := rec["latency"]; !ok {
		t.Error("no latency")
	}
	if strings.Contains(buf.String(), tok[:40]) || strings.Contains(buf.String(), tok[len(tok)-20:]) {
		t.Error("the log contains the token")
	}
}

// TestCheckResponseSharing: answers served from one cached identity carry each response's own
// rule, and forward_token: false changes copies of the identity's header lists, never the
// cached lists themselves.
func TestCheckResponseSharing(t *testing.T) {
	e, idp := benchEngine(t, 10)
	tok := keycloakLike(t, idp, "RS256")
	ctx := context.Background()
	api := e.Decide(ctx, benchRequest(tok))
	health := e.Decide(ctx, &Request{Method: "GET", Host: "h", Path: "/healthz", Headers: map[string]string{"authorization": "Bearer " + tok}})
	if api.Rule != "api" || health.Rule != "health" || &api.Upstream[0] != &health.Upstream[0] {
		t.Fatalf("decisions: %s %s, header lists shared: %v", api.Rule, health.Rule, &api.Upstream[0] == &health.Upstream[0])
	}
	for _, c := range []struct {
		d    *Decision
		rule string
	}{{api, "api"}, {health, "health"}, {api, "api"}} {
		md := servedResponse(t, c.d).GetDynamicMetadata().AsMap()["portcullis"].(map[string]any)
		if md["rule"] != c.rule || md["sub"] != "6f1c2d7e-1b8a-4a55-9a8e-0d6c1f1f2a3b" {
			t.Errorf("metadata = %v, want rule %s", md, c.rule)
		}
	}
	cachedRemove := len(api.UpstreamRemove)
	e.forwardToken = false
	d := e.Decide(ctx, benchRequest(tok))
	if &d.Upstream[0] == &api.Upstream[0] {
		t.Error("a decision with forward_token: false shares the cached header list")
	}
	got := headerMapOf(servedResponse(t, d))
	if _, ok := got["authorization"]; ok || len(d.UpstreamRemove) == 0 || d.UpstreamRemove[len(d.UpstreamRemove)-1] != "authorization" {
		t.Errorf("forward_token: false: set %v, remove %v", got, d.UpstreamRemove)
	}
	if again := e.Decide(ctx, benchRequest(tok)); len(again.UpstreamRemove) != cachedRemove+1 || len(api.UpstreamRemove) != cachedRemove {
		t.Errorf("the cached remove list changed: %v, then %v", api.UpstreamRemove, again.UpstreamRemove)
	}
}

func headerMapOf(r *authv3.CheckResponse) map[string]string {
	m := map[string]string{}
	for _, h := range r.GetOkResponse().GetHeaders() {
		m[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return m
}

// TestDecisionSeriesExistAtStart: every decision series a front can serve is exported at zero
// before any decision, allows only with ok/public and denies with every other reason.
func TestDecisionSeriesExistAtStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		if f.GetName() != "portcullis_decisions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			allow := labels["reason"] == "ok" || labels["reason"] == "public"
			if (labels["decision"] == "allow") != allow || m.GetCounter().GetValue() != 0 {
				t.Errorf("series %v = %v", labels, m.GetCounter().GetValue())
			}
			n++
		}
	}
	if want := 2 * len(reason.All()); n != want {
		t.Errorf("%d decision series, want %d", n, want)
	}
}
