package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/portcullis-authz/portcullis/tracing"
)

// startTraced is the stack of server_test.go with tracingBlock appended to its configuration
// (no block: tracing off), its spans going to an in-memory exporter and its log to logs.
func startTraced(t *testing.T, tracingBlock string, logs *logBuffer) (*stack, *tracetest.InMemoryExporter) {
	t.Helper()
	idp := servedIdP(t)
	path := filepath.Join(t.TempDir(), "portcullis.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(testConfig, idp.Issuer(), 100)+tracingBlock), 0o600); err != nil {
		t.Fatal(err)
	}
	exp := tracetest.NewInMemoryExporter()
	opts := Options{ConfigPath: path, Tracing: tracing.Options{Exporter: exp, Getenv: func(string) string { return "" }}}
	if logs != nil {
		opts.Logger = logs.logger()
	}
	srv, _ := runWith(t, opts)
	return connectStack(t, idp, srv), exp
}

const tracingOn = `
tracing:
  otlp_endpoint: "127.0.0.1:4317"
  insecure: true
  sample_ratio: 1.0
`

// checkSpans are the exported spans of checks (not those of the key-set fetches).
func checkSpans(exp *tracetest.InMemoryExporter) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range exp.GetSpans() {
		if strings.HasPrefix(s.Name, "portcullis.check.") {
			out = append(out, s)
		}
	}
	return out
}

func attrMap(s tracetest.SpanStub) map[string]string {
	m := map[string]string{}
	for _, a := range s.Attributes {
		m[string(a.Key)] = a.Value.Emit()
	}
	return m
}

const (
	w3cTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	w3cSpan  = "00f067aa0ba902b7"
	b3Trace  = "80f198ee56343ba864fe8b2a57d3eff7"
	b3Span   = "e457b5a2e4d86bd1"
)

// TestCheckSpanParent: the check's span is the child of the span its request carries, in the
// same trace, for each propagation format, on the gRPC metadata of the ext_authz call and in
// the original request's headers; the metadata (Envoy's own span) wins over the headers.
func TestCheckSpanParent(t *testing.T) {
	st, exp := startTraced(t, tracingOn, nil)
	cases := []struct {
		name        string
		headers, md map[string]string
		trace, span string
		tracestate  string
	}{
		{name: "W3C traceparent and tracestate in the headers",
			headers: map[string]string{"traceparent": "00-" + w3cTrace + "-" + w3cSpan + "-01", "tracestate": "vendor=abc"},
			trace:   w3cTrace, span: w3cSpan, tracestate: "vendor=abc"},
		{name: "B3 single header",
			headers: map[string]string{"b3": b3Trace + "-" + b3Span + "-1"},
			trace:   b3Trace, span: b3Span},
		{name: "B3 multi-header",
			headers: map[string]string{"x-b3-traceid": b3Trace, "x-b3-spanid": b3Span, "x-b3-sampled": "1"},
			trace:   b3Trace, span: b3Span},
		{name: "W3C traceparent in the gRPC metadata",
			md:    map[string]string{"traceparent": "00-" + w3cTrace + "-" + w3cSpan + "-01"},
			trace: w3cTrace, span: w3cSpan},
		{name: "B3 in the gRPC metadata",
			md:    map[string]string{"x-b3-traceid": b3Trace, "x-b3-spanid": b3Span, "x-b3-sampled": "1"},
			trace: b3Trace, span: b3Span},
		{name: "metadata over headers",
			headers: map[string]string{"traceparent": "00-" + w3cTrace + "-" + w3cSpan + "-01"},
			md:      map[string]string{"b3": b3Trace + "-" + b3Span + "-1"},
			trace:   b3Trace, span: b3Span},
		{name: "W3C over B3 in the headers",
			headers: map[string]string{"traceparent": "00-" + w3cTrace + "-" + w3cSpan + "-01", "b3": b3Trace + "-" + b3Span + "-1"},
			trace:   w3cTrace, span: w3cSpan},
		{name: "no parent: a new trace"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			exp.Reset()
			ctx := context.Background()
			for k, v := range c.md {
				ctx = metadata.AppendToOutgoingContext(ctx, k, v)
			}
			headers := map[string]string{}
			for k, v := range c.headers {
				headers[k] = v
			}
			if _, err := st.client.Check(ctx, checkRequest("GET", "api.example.com", "/healthz", headers)); err != nil {
				t.Fatal(err)
			}
			spans := checkSpans(exp)
			if len(spans) != 1 {
				t.Fatalf("%d check spans, want 1", len(spans))
			}
			s := spans[0]
			if s.Name != "portcullis.check.grpc" || s.SpanKind != trace.SpanKindServer {
				t.Errorf("span %q kind %s, want portcullis.check.grpc, server", s.Name, s.SpanKind)
			}
			if c.trace == "" {
				if s.Parent.IsValid() {
					t.Errorf("parent %s, want none", s.Parent.SpanID())
				}
				return
			}
			if got := s.SpanContext.TraceID().String(); got != c.trace {
				t.Errorf("trace ID %s, want %s", got, c.trace)
			}
			if got := s.Parent.SpanID().String(); got != c.span || !s.Parent.IsRemote() {
				t.Errorf("parent %s (remote %v), want remote %s", got, s.Parent.IsRemote(), c.span)
			}
			if got := s.SpanContext.TraceState().String(); got != c.tracestate {
				t.Errorf("tracestate %q, want %q", got, c.tracestate)
			}
		})
	}

	t.Run("HTTP forward-auth front", func(t *testing.T) {
		exp.Reset()
		req, _ := http.NewRequest("GET", st.http+"/healthz", nil)
		req.Header.Set("Traceparent", "00-"+w3cTrace+"-"+w3cSpan+"-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		spans := checkSpans(exp)
		if len(spans) != 1 || spans[0].Name != "portcullis.check.http" {
			t.Fatalf("check spans %+v, want one portcullis.check.http", spans)
		}
		if got := spans[0].SpanContext.TraceID().String() + "/" + spans[0].Parent.SpanID().String(); got != w3cTrace+"/"+w3cSpan {
			t.Errorf("trace/parent %s, want %s/%s", got, w3cTrace, w3cSpan)
		}
	})
}

// TestCheckSpanAttributes: the span says the decision, reason, rule, issuer, subject, whether
// the identity was cached and the status; never the token, and no claim but sub unless
// tracing.claims lists it.
func TestCheckSpanAttributes(t *testing.T) {
	for _, claims := range []bool{false, true} {
		t.Run(fmt.Sprintf("claims listed: %v", claims), func(t *testing.T) {
			block := tracingOn
			if claims {
				block += "  claims: [email, email_verified]\n"
			}
			st, exp := startTraced(t, block, nil)
			tok := st.mint(t, jwa.RS256, nil)
			issuer := st.idp.Issuer()
			type want map[string]string
			base := func(extra want) want {
				w := want{"portcullis.front": "grpc", "http.request.method": "GET", "server.address": "api.example.com"}
				for k, v := range extra {
					w[k] = v
				}
				return w
			}
			identity := want{"portcullis.issuer": issuer, "portcullis.sub": "user-1"}
			if claims {
				identity["portcullis.claim.email"] = "alice@example.com"
				identity["portcullis.claim.email_verified"] = "true"
			}
			with := func(a, b want) want {
				for k, v := range b {
					a[k] = v
				}
				return a
			}
			cases := []struct {
				name, path, token string
				want              want
			}{
				{"allow", "/api/orders?access_token=secret", tok, with(base(want{"url.path": "/api/orders", "portcullis.decision": "allow",
					"portcullis.reason": "ok", "portcullis.rule": "api", "portcullis.cached": "false", "http.response.status_code": "200"}), identity)},
				{"allow, cached", "/api/orders", tok, with(base(want{"url.path": "/api/orders", "portcullis.decision": "allow",
					"portcullis.reason": "ok", "portcullis.rule": "api", "portcullis.cached": "true", "http.response.status_code": "200"}), identity)},
				{"deny, no token", "/api/orders", "", base(want{"url.path": "/api/orders", "portcullis.decision": "deny",
					"portcullis.reason": "no_token", "portcullis.rule": "api", "portcullis.cached": "false", "http.response.status_code": "401"})},
				{"deny, forbidden", "/api/admin/x", tok, with(base(want{"url.path": "/api/admin/x", "portcullis.decision": "deny",
					"portcullis.reason": "forbidden", "portcullis.rule": "admin", "portcullis.cached": "true", "http.response.status_code": "403"}), identity)},
				{"deny, no rule", "/elsewhere", "", base(want{"url.path": "/elsewhere", "portcullis.decision": "deny",
					"portcullis.reason": "no_rule", "portcullis.cached": "false", "http.response.status_code": "403"})},
			}
			for _, c := range cases {
				exp.Reset()
				headers := map[string]string{}
				if c.token != "" {
					headers["authorization"] = "Bearer " + c.token
				}
				if _, err := st.client.Check(context.Background(), checkRequest("GET", "api.example.com", c.path, headers)); err != nil {
					t.Fatal(err)
				}
				spans := checkSpans(exp)
				if len(spans) != 1 {
					t.Fatalf("%s: %d check spans", c.name, len(spans))
				}
				got := attrMap(spans[0])
				if fmt.Sprint(got) != fmt.Sprint(map[string]string(c.want)) {
					t.Errorf("%s: attributes\n got %v\nwant %v", c.name, got, c.want)
				}
				for k, v := range got {
					if strings.Contains(v, tok) || strings.Contains(v, "secret") {
						t.Errorf("%s: attribute %s holds the token or the query", c.name, k)
					}
				}
			}
		})
	}
}

// TestCheckNotSampled: parent-based sampling at sample_ratio: a check whose parent was not
// sampled is never exported, one whose parent was always is, and a new trace as the ratio says.
func TestCheckNotSampled(t *testing.T) {
	cases := []struct {
		name, ratio, flags string
		parent             bool
		exported           bool
	}{
		{"ratio 0, no parent", "0", "", false, false},
		{"ratio 1, parent not sampled", "1", "00", true, false},
		{"ratio 0, parent sampled", "0", "01", true, true},
		{"ratio 1, no parent", "1", "", false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			logs := &logBuffer{}
			st, exp := startTraced(t, "\ntracing:\n  insecure: true\n  sample_ratio: "+c.ratio+"\n", logs)
			headers := map[string]string{}
			if c.parent {
				headers["traceparent"] = "00-" + w3cTrace + "-" + w3cSpan + "-" + c.flags
			}
			if _, err := st.client.Check(context.Background(), checkRequest("GET", "api.example.com", "/api/orders", headers)); err != nil {
				t.Fatal(err)
			}
			if got := len(checkSpans(exp)); got != map[bool]int{false: 0, true: 1}[c.exported] {
				t.Errorf("%d check spans exported, want exported=%v", got, c.exported)
			}
			// The deny line names the trace either way, and says when it was not sampled.
			line := denyLine(t, logs)
			if !regexp.MustCompile(`"trace_id":"[0-9a-f]{32}","span_id":"[0-9a-f]{16}"`).MatchString(line) {
				t.Errorf("deny line without trace_id and span_id: %s", line)
			}
			if c.parent && !strings.Contains(line, `"trace_id":"`+w3cTrace+`"`) {
				t.Errorf("deny line not in the parent's trace: %s", line)
			}
			if sampled := !strings.Contains(line, `"trace_sampled":false`); sampled != c.exported {
				t.Errorf("deny line says sampled=%v, want %v: %s", sampled, c.exported, line)
			}
		})
	}
}

func denyLine(t *testing.T, logs *logBuffer) string {
	t.Helper()
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"deny"`) {
			return line
		}
	}
	t.Fatalf("no deny line in the log:\n%s", logs.String())
	return ""
}

// TestExemplars: with tracing, a scraper asking for OpenMetrics gets the check durations with
// the trace ID of a sampled check as exemplar; the Prometheus text format stays as it was.
func TestExemplars(t *testing.T) {
	st, _ := startTraced(t, tracingOn, nil)
	if _, err := st.client.Check(context.Background(), checkRequest("GET", "api.example.com", "/healthz",
		map[string]string{"traceparent": "00-" + w3cTrace + "-" + w3cSpan + "-01"})); err != nil {
		t.Fatal(err)
	}
	open := scrape(t, st.admin, "application/openmetrics-text;version=1.0.0")
	if !regexp.MustCompile(`portcullis_check_duration_seconds_bucket\{decision="allow",front="grpc",le="[^"]+"\} 1 # \{trace_id="` + w3cTrace + `"\} `).MatchString(open) {
		t.Errorf("no exemplar with the trace ID in the OpenMetrics answer:\n%s", grepLines(open, "portcullis_check_duration_seconds_bucket"))
	}
	if text := scrape(t, st.admin, ""); strings.Contains(text, "trace_id") {
		t.Errorf("the Prometheus text format carries exemplars:\n%s", grepLines(text, "trace_id"))
	}
}

// TestTracingOff: without a tracing section nothing is traced: the deny line has no trace_id
// (a traceparent notwithstanding), /metrics answers the Prometheus text format even to an
// OpenMetrics scraper, and nothing reaches an exporter.
func TestTracingOff(t *testing.T) {
	logs := &logBuffer{}
	st, exp := startTraced(t, "", logs)
	if st.srv.tracing != nil {
		t.Fatal("tracing is on without a tracing section")
	}
	if _, err := st.client.Check(context.Background(), checkRequest("GET", "api.example.com", "/api/orders",
		map[string]string{"traceparent": "00-" + w3cTrace + "-" + w3cSpan + "-01"})); err != nil {
		t.Fatal(err)
	}
	if line := denyLine(t, logs); strings.Contains(line, "trace_id") || strings.Contains(line, "span_id") {
		t.Errorf("deny line with a trace: %s", line)
	}
	resp, err := http.Get(st.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("GET", st.admin+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q to an OpenMetrics scraper with tracing off, want the text format", ct)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans exported with tracing off", n)
	}
}

// TestTracingReloadRefused: the tracing section is read once, at start.
func TestTracingReloadRefused(t *testing.T) {
	st, _ := startTraced(t, tracingOn, nil)
	path := st.srv.opts.ConfigPath
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), "sample_ratio: 1.0", "sample_ratio: 0.5", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := st.srv.Reload(); err == nil || err.Error() != "tracing: the tracing section cannot change on reload; restart Portcullis" {
		t.Errorf("Reload() = %v", err)
	}
}

func scrape(t *testing.T, admin, accept string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", admin+"/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
