package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/portcullis-authz/portcullis/tracing"
)

// introspectingConfig is an issuer whose tokens are introspected on the payments route.
const introspectingConfig = `
server:
  grpc_addr: "127.0.0.1:0"
  http_addr: "127.0.0.1:0"
  admin_addr: "127.0.0.1:0"
issuers:
  - issuer: %q
    audiences: [orders-api]
    algorithms: [RS256]
    introspection:
      endpoint: %q
      client_id: portcullis
      client_secret_file: %q
      cache_ttl: 60s
rules:
  - name: payments
    match: { paths: ["/api/payments/**"] }
    require: { active: true }
`

const introspectionTestSecret = "introspection-secret-7c1d"

// introspectionEndpoint answers active, or HTTP 500 when failing is set, and counts the calls.
type introspectionEndpoint struct {
	srv     *httptest.Server
	calls   atomic.Int32
	failing atomic.Bool
}

// startIntrospectingTraced is startTraced on introspectingConfig.
func startIntrospectingTraced(t *testing.T, tracingBlock string) (*stack, *tracetest.InMemoryExporter, *introspectionEndpoint) {
	t.Helper()
	idp := servedIdP(t)
	ep := &introspectionEndpoint{}
	ep.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ep.calls.Add(1)
		if ep.failing.Load() {
			http.Error(w, "down for maintenance", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"active": true, "sub": "user-1"}`)
	}))
	t.Cleanup(ep.srv.Close)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte(introspectionTestSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "portcullis.yaml")
	cfg := fmt.Sprintf(introspectingConfig, idp.Issuer(), ep.srv.URL+"/introspect", secret) + tracingBlock
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	exp := tracetest.NewInMemoryExporter()
	srv, _ := runWith(t, Options{ConfigPath: path, Tracing: tracing.Options{Exporter: exp, Getenv: func(string) string { return "" }}})
	return connectStack(t, idp, srv), exp, ep
}

// introspectionSpans are the exported introspect.* spans.
func introspectionSpans(exp *tracetest.InMemoryExporter) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range exp.GetSpans() {
		if strings.HasPrefix(s.Name, "introspect.") {
			out = append(out, s)
		}
	}
	return out
}

// TestIntrospectionSpans: a check that introspects has its introspect.call span as a child of
// the check's span, in the trace of the request; the next check of the token is answered from
// the introspection cache, says so on its span and has no introspect.call; a failed call sets
// the error status of its span (and the check's, a 503).
func TestIntrospectionSpans(t *testing.T) {
	st, exp, ep := startIntrospectingTraced(t, tracingOn)
	tok := st.mint(t, jwa.RS256, nil)
	check := func(tok string) (tracetest.SpanStub, tracetest.SpanStubs) {
		t.Helper()
		exp.Reset()
		if _, err := st.client.Check(context.Background(), checkRequest("GET", "api.example.com", "/api/payments/1",
			map[string]string{"authorization": "Bearer " + tok, "traceparent": "00-" + w3cTrace + "-" + w3cSpan + "-01"})); err != nil {
			t.Fatal(err)
		}
		checks := checkSpans(exp)
		if len(checks) != 1 {
			t.Fatalf("%d check spans", len(checks))
		}
		return checks[0], introspectionSpans(exp)
	}

	c, calls := check(tok)
	if got := attrMap(c); got["portcullis.decision"] != "allow" || got["portcullis.introspection.cached"] != "false" {
		t.Errorf("first check: attributes %v", got)
	}
	if len(calls) != 1 {
		t.Fatalf("first check: %d introspection spans, want 1", len(calls))
	}
	call := calls[0]
	if call.Name != "introspect.call" || call.SpanContext.TraceID().String() != w3cTrace || call.Parent.SpanID() != c.SpanContext.SpanID() {
		t.Errorf("span %s in trace %s with parent %s; want introspect.call in %s, child of the check's span %s",
			call.Name, call.SpanContext.TraceID(), call.Parent.SpanID(), w3cTrace, c.SpanContext.SpanID())
	}
	a := attrMap(call)
	if want := fmt.Sprint(map[string]string{"portcullis.issuer": st.idp.Issuer(), "portcullis.introspection.result": "active",
		"http.request.method": "POST", "server.address": "127.0.0.1", "server.port": ep.srv.URL[strings.LastIndex(ep.srv.URL, ":")+1:],
		"http.response.status_code": "200"}); fmt.Sprint(a) != want {
		t.Errorf("introspect.call attributes\n got %v\nwant %s", a, want)
	}
	for k, v := range a {
		if strings.Contains(v, tok) || strings.Contains(v, introspectionTestSecret) {
			t.Errorf("attribute %s holds the token or the secret", k)
		}
	}

	c, calls = check(tok)
	if got := attrMap(c); got["portcullis.decision"] != "allow" || got["portcullis.introspection.cached"] != "true" {
		t.Errorf("second check: attributes %v", got)
	}
	if len(calls) != 0 || ep.calls.Load() != 1 {
		t.Errorf("second check: %d introspection spans, %d calls; want none, one call in all", len(calls), ep.calls.Load())
	}

	ep.failing.Store(true)
	c, calls = check(st.mint(t, jwa.RS256, map[string]any{"jti": "another"}))
	if got := attrMap(c); got["http.response.status_code"] != "503" || got["portcullis.introspection.cached"] != "false" || c.Status.Code != codes.Error {
		t.Errorf("failing check: attributes %v, status %v", got, c.Status)
	}
	if len(calls) != 1 {
		t.Fatalf("failing check: %d introspection spans, want 1", len(calls))
	}
	want := "POST " + ep.srv.URL + "/introspect: HTTP 500"
	if a := attrMap(calls[0]); calls[0].Status.Code != codes.Error || calls[0].Status.Description != want ||
		a["portcullis.introspection.result"] != "error" || a["http.response.status_code"] != "500" {
		t.Errorf("failing call: status %v %q, attributes %v; want Error %q", calls[0].Status.Code, calls[0].Status.Description, a, want)
	}
}

// TestIntrospectionTracingOff: without a tracing section an introspected check exports nothing.
func TestIntrospectionTracingOff(t *testing.T) {
	st, exp, ep := startIntrospectingTraced(t, "")
	if st.srv.intro.tracer != nil {
		t.Fatal("the introspectors have a tracer without a tracing section")
	}
	resp, err := st.client.Check(context.Background(), checkRequest("GET", "api.example.com", "/api/payments/1",
		map[string]string{"authorization": "Bearer " + st.mint(t, jwa.RS256, nil), "traceparent": "00-" + w3cTrace + "-" + w3cSpan + "-01"}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOkResponse() == nil || ep.calls.Load() != 1 {
		t.Fatalf("not allowed after one introspection: %v, %d calls", resp.GetStatus(), ep.calls.Load())
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans exported with tracing off", n)
	}
}
