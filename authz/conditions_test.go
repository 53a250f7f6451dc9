package authz

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/rules"
)

// TestConditionsSeeTheRequest: through a real gRPC listener and the wire parser, each
// variable a `when` reads carries what Envoy sent (path params, query, headers, the source's
// address, the route's context_extensions, the clock), match.context chooses the rule, and a
// condition that cannot be evaluated denies and is logged at warn.
func TestConditionsSeeTheRequest(t *testing.T) {
	v, idp := benchVerifier(t)
	spec := func(name, path, when string) rules.Spec {
		return rules.Spec{Name: name, Match: rules.MatchSpec{Paths: []string{path}}, Require: rules.RequireSpec{When: when}}
	}
	internal := spec("internal", "/internal/**", `cidr("10.0.0.0/8").containsIP(source.address)`)
	internal.Match.Context = map[string]string{"portcullis-zone": "internal"}
	set, err := rules.Compile([]rules.Spec{
		spec("user", "/users/{name}/**", `claims.preferred_username == params.name`),
		spec("query", "/search", `request.query.tenant == "acme"`),
		spec("header", "/h", `request.headers["x-tenant"] == "acme"`),
		internal,
		spec("context", "/internal/**", `context["portcullis-zone"] == "public"`),
		spec("clock", "/clock", `now == timestamp("2030-01-02T03:04:05Z")`),
		spec("broken", "/broken", `claims.no_such_claim == "x"`),
	})
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(Options{Rules: set, Verifier: v, Sources: []config.TokenSource{{Header: "authorization", Prefix: "Bearer "}},
		Now: func() time.Time { return time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC) }})
	logs := &lockedBuffer{}
	a := NewAuthorizer(e, NewMetrics(prometheus.NewRegistry()), slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	client := authv3.NewAuthorizationClient(startGRPC(t, a))
	auth := map[string]string{"authorization": "Bearer " + keycloakLike(t, idp, jwa.RS256)}
	check := func(path string, headers map[string]string, source string, ext map[string]string) (int, string) {
		t.Helper()
		h := map[string]string{}
		for k, v := range auth {
			h[k] = v
		}
		for k, v := range headers {
			h[k] = v
		}
		req := envoyCheck(&authv3.AttributeContext_HttpRequest{Method: "GET", Host: "api.example.com", Path: path, Headers: h}, ext)
		req.Attributes.Source.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: source}}}
		resp, err := client.Check(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetOkResponse() != nil {
			return 200, resp.GetStatus().GetMessage()
		}
		return int(resp.GetDeniedResponse().GetStatus().GetCode()), resp.GetStatus().GetMessage()
	}
	internalZone := map[string]string{"portcullis-zone": "internal"}
	for _, c := range []struct {
		name, path string
		headers    map[string]string
		source     string
		ext        map[string]string
		want       int
	}{
		{"params: her own name", "/users/alice/orders", nil, "192.0.2.1", nil, 200},
		{"params: percent-decoded", "/users/%61lice/orders", nil, "192.0.2.1", nil, 200},
		{"params: someone else's", "/users/bob/orders", nil, "192.0.2.1", nil, 403},
		{"query: first value", "/search?tenant=acme&tenant=evil", nil, "192.0.2.1", nil, 200},
		{"query: another tenant", "/search?tenant=globex", nil, "192.0.2.1", nil, 403},
		{"query: none", "/search", nil, "192.0.2.1", nil, 403},
		{"header bound", "/h", map[string]string{"x-tenant": "acme"}, "192.0.2.1", nil, 200},
		{"header another", "/h", map[string]string{"x-tenant": "globex"}, "192.0.2.1", nil, 403},
		{"internal zone, internal address", "/internal/x", nil, "10.1.2.3", internalZone, 200},
		{"internal zone, IPv4-mapped internal address", "/internal/x", nil, "::ffff:10.1.2.3", internalZone, 200},
		{"internal zone, outside address", "/internal/x", nil, "192.0.2.1", internalZone, 403},
		{"no zone: the next rule, whose condition reads context", "/internal/x", nil, "10.1.2.3", map[string]string{"portcullis-zone": "public"}, 200},
		{"no context at all: the next rule, unmet", "/internal/x", nil, "10.1.2.3", nil, 403},
		{"the injected clock", "/clock", nil, "192.0.2.1", nil, 200},
		{"a condition that fails to evaluate denies", "/broken", nil, "192.0.2.1", nil, 403},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got, msg := check(c.path, c.headers, c.source, c.ext); got != c.want {
				t.Errorf("%s: %d (%s), want %d", c.path, got, msg, c.want)
			}
		})
	}
	var warned bool
	for _, l := range logs.lines(t) {
		if l["rule"] == "broken" && l["level"] == "WARN" {
			errs, _ := l["condition_errors"].([]any)
			warned = len(errs) == 1 && strings.Contains(errs[0].(string), `rules[6].require.when (rule "broken")`)
		}
	}
	if !warned {
		t.Errorf("the condition that failed is not logged at warn with its field and rule: %v", logs.lines(t))
	}
}
