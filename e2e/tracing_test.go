//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A real OpenTelemetry Collector (scripts/install-otelcol.sh builds it with the collector's
// builder from the Go module proxy: the OTLP receiver and the file exporter) on loopback
// receives the spans of a real Envoy, with its OpenTelemetry tracer (the commented tracing
// blocks of envoy/envoy.yaml, uncommented), and of a Portcullis with a tracing section. Envoy
// speaks OTLP/gRPC to it, Portcullis OTLP/HTTP. The collector writes what it receives as OTLP
// JSON, which the test reads: Portcullis's check span must be in Envoy's trace, the child of
// Envoy's span for the ext_authz call. The shared stack is left alone: this test runs a
// collector, a Portcullis and an Envoy of its own (Keycloak is the shared one).

const otelcolStartTimeout = 30 * time.Second

func findOtelcol() (string, error) {
	if p := os.Getenv("PORTCULLIS_OTELCOL"); p != "" {
		return p, nil
	}
	matches, _ := filepath.Glob(filepath.Join(cacheDir(), "otelcol-*", "bin", "otelcol-portcullis"))
	if len(matches) > 0 {
		sort.Strings(matches)
		return matches[len(matches)-1], nil
	}
	return "", errors.New("no collector: run scripts/install-otelcol.sh (or scripts/e2e.sh), or set PORTCULLIS_OTELCOL")
}

// uncommentTracing returns envoy.yaml with its `# ---- tracing (begin)` … `(end)` blocks
// uncommented (the leading "# " of each line dropped), as a reader following its comments would.
func uncommentTracing(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	inside, blocks := false, 0
	comment := regexp.MustCompile(`^(\s*)# `)
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.Contains(line, "# ---- tracing (begin)"):
			inside = true
			blocks++
			continue
		case strings.Contains(line, "# ---- tracing (end)"):
			inside = false
			continue
		case inside:
			line = comment.ReplaceAllString(line, "$1")
		}
		out = append(out, line)
	}
	if blocks != 2 {
		t.Fatalf("%s: %d tracing blocks, want 2 (the HTTP connection manager's and the collector cluster)", path, blocks)
	}
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// otlpSpan is one span of the collector's OTLP JSON, with its resource's service.name.
type otlpSpan struct {
	service                       string
	traceID, spanID, parentSpanID string
	name                          string
	kind                          int
	attrs                         map[string]string
}

// readSpans parses the file exporter's output: one OTLP JSON ExportTraceServiceRequest a line.
func readSpans(path string) ([]otlpSpan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type anyValue struct {
		StringValue *string `json:"stringValue"`
		IntValue    *string `json:"intValue"`
		BoolValue   *bool   `json:"boolValue"`
	}
	type kv struct {
		Key   string   `json:"key"`
		Value anyValue `json:"value"`
	}
	str := func(v anyValue) string {
		switch {
		case v.StringValue != nil:
			return *v.StringValue
		case v.IntValue != nil:
			return *v.IntValue
		case v.BoolValue != nil:
			return strconv.FormatBool(*v.BoolValue)
		}
		return ""
	}
	var out []otlpSpan
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var doc struct {
			ResourceSpans []struct {
				Resource struct {
					Attributes []kv `json:"attributes"`
				} `json:"resource"`
				ScopeSpans []struct {
					Spans []struct {
						TraceID      string `json:"traceId"`
						SpanID       string `json:"spanId"`
						ParentSpanID string `json:"parentSpanId"`
						Name         string `json:"name"`
						Kind         int    `json:"kind"`
						Attributes   []kv   `json:"attributes"`
					} `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
		}
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for _, rs := range doc.ResourceSpans {
			service := ""
			for _, a := range rs.Resource.Attributes {
				if a.Key == "service.name" {
					service = str(a.Value)
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					attrs := map[string]string{}
					for _, a := range s.Attributes {
						attrs[a.Key] = str(a.Value)
					}
					out = append(out, otlpSpan{service: service, traceID: s.TraceID, spanID: s.SpanID,
						parentSpanID: s.ParentSpanID, name: s.Name, kind: s.Kind, attrs: attrs})
				}
			}
		}
	}
	return out, sc.Err()
}

func TestTraceThroughEnvoyToCollector(t *testing.T) {
	bin, err := findOtelcol()
	if err != nil {
		t.Fatal(err)
	}
	ports, err := freePorts(7)
	if err != nil {
		t.Fatal(err)
	}
	otlpGRPC, otlpHTTP, grpcPort, adminPort, envoyPort, envoyAdminPort, httpPort :=
		ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6]
	dir := t.TempDir()
	spansFile := filepath.Join(dir, "spans.json")

	// The collector: OTLP in on loopback, OTLP JSON out to a file; its own telemetry off, so
	// it binds nothing else.
	colConfig := filepath.Join(dir, "otelcol.yaml")
	if err := os.WriteFile(colConfig, []byte(fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc: { endpoint: "127.0.0.1:%d" }
      http: { endpoint: "127.0.0.1:%d" }
exporters:
  file:
    path: %q
    flush_interval: 100ms
service:
  telemetry:
    metrics: { level: none }
  pipelines:
    traces: { receivers: [otlp], exporters: [file] }
`, otlpGRPC, otlpHTTP, spansFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	col, err := env.start("otelcol", nil, bin, "--config", colConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { col.stop(5 * time.Second) })
	if err := waitUntil(col, otelcolStartTimeout, "otelcol OTLP listeners", func() error {
		for _, p := range []int{otlpGRPC, otlpHTTP} {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second)
			if err != nil {
				return err
			}
			c.Close()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Portcullis: the shared stack's configuration with a tracing section, over OTLP/HTTP;
	// the batch processor's delay from the standard OTEL_BSP_SCHEDULE_DELAY variable.
	pcConfig := filepath.Join(dir, "portcullis.yaml")
	if err := env.render("envoy/portcullis.yaml", pcConfig, map[string]string{
		"grpc-addr":      strconv.Quote(fmt.Sprintf("127.0.0.1:%d", grpcPort)),
		"http-addr":      strconv.Quote(fmt.Sprintf("127.0.0.1:%d", httpPort)),
		"admin-addr":     strconv.Quote(fmt.Sprintf("127.0.0.1:%d", adminPort)),
		"issuer":         strconv.Quote(env.kc.issuer),
		"jwks-cache-dir": strconv.Quote(filepath.Join(dir, "jwks-cache")),
	}); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(pcConfig, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\ntracing:\n  otlp_endpoint: \"127.0.0.1:%d\"\n  protocol: http/protobuf\n  insecure: true\n  sample_ratio: 1.0\n  service_name: portcullis\n", otlpHTTP)
	f.Close()
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	pc, err := env.start("portcullis-traced", []string{"OTEL_BSP_SCHEDULE_DELAY=200"}, env.portcullisBin,
		"serve", "--config", pcConfig, "--log-level", "debug", "--log-format", "json")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.stop(10 * time.Second) })
	if err := waitUntil(pc, portcullisStartTimeout, "portcullis-traced /readyz", expectStatus(adminURL+"/readyz", http.StatusOK)); err != nil {
		t.Fatal(err)
	}

	// Envoy: envoy/envoy.yaml with its tracing blocks uncommented, sending to the collector.
	envoyConfig := filepath.Join(dir, "envoy.yaml")
	if err := env.render("envoy/envoy.yaml", envoyConfig, map[string]string{
		"admin-port":      strconv.Itoa(envoyAdminPort),
		"listen-port":     strconv.Itoa(envoyPort),
		"portcullis-port": strconv.Itoa(grpcPort),
		"upstream-port":   strconv.Itoa(env.upstream.port()),
		"otel-port":       strconv.Itoa(otlpGRPC),
	}); err != nil {
		t.Fatal(err)
	}
	uncommentTracing(t, envoyConfig)
	ev, err := env.startEnvoyWith("envoy-traced", envoyConfig, fmt.Sprintf("http://127.0.0.1:%d", envoyAdminPort))
	if ev != nil {
		t.Cleanup(func() { ev.stop(5 * time.Second) })
	}
	if err != nil {
		t.Fatal(err)
	}

	tk := env.kc.login(t, "alice")
	sub := claims(t, tk.Access)["sub"]
	r := callAt(t, fmt.Sprintf("http://127.0.0.1:%d", envoyPort), http.MethodGet, "/api/orders/1", tk.Access, nil)
	if r.status != http.StatusOK || !r.reached {
		t.Fatalf("got %s, want 200 from the upstream", r)
	}
	deny := callAt(t, fmt.Sprintf("http://127.0.0.1:%d", envoyPort), http.MethodGet, "/api/orders/2", "", nil)
	if deny.status != http.StatusUnauthorized {
		t.Fatalf("got %s, want 401", deny)
	}

	// Envoy flushes its spans every 5 s; Portcullis every 200 ms.
	var spans []otlpSpan
	var checks []otlpSpan
	deadline := time.Now().Add(45 * time.Second)
	for {
		spans, _ = readSpans(spansFile)
		checks = checks[:0]
		envoyTraces := map[string]bool{}
		for _, s := range spans {
			if s.service == "envoy" {
				envoyTraces[s.traceID] = true
			}
		}
		for _, s := range spans {
			if s.service == "portcullis" && s.name == "portcullis.check.grpc" && envoyTraces[s.traceID] {
				checks = append(checks, s)
			}
		}
		if len(checks) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(checks) < 2 {
		for _, s := range spans {
			t.Logf("span %s %q trace %s span %s parent %s", s.service, s.name, s.traceID, s.spanID, s.parentSpanID)
		}
		t.Fatalf("the collector has %d Portcullis check spans in an Envoy trace, want 2 (%d spans in all)", len(checks), len(spans))
	}
	byID := map[string]otlpSpan{}
	for _, s := range spans {
		byID[s.traceID+"/"+s.spanID] = s
	}
	want := map[string]map[string]string{
		"allow": {"portcullis.decision": "allow", "portcullis.reason": "ok", "portcullis.rule": "api",
			"portcullis.issuer": env.kc.issuer, "portcullis.sub": fmt.Sprint(sub), "http.response.status_code": "200", "url.path": "/api/orders/1"},
		"deny": {"portcullis.decision": "deny", "portcullis.reason": "no_token", "portcullis.rule": "api",
			"http.response.status_code": "401", "url.path": "/api/orders/2"},
	}
	for _, c := range checks {
		parent, ok := byID[c.traceID+"/"+c.parentSpanID]
		if !ok || parent.service != "envoy" {
			t.Errorf("check span %s (trace %s): parent %s is no span of Envoy's", c.spanID, c.traceID, c.parentSpanID)
			continue
		}
		// Envoy's span for the ext_authz call, itself a child of Envoy's span for the request.
		if !strings.Contains(parent.name, "envoy.service.auth.v3.Authorization.Check") {
			t.Errorf("check span's parent is Envoy's %q, want its ext_authz call span", parent.name)
		}
		if root, ok := byID[c.traceID+"/"+parent.parentSpanID]; !ok || root.service != "envoy" || root.parentSpanID != "" {
			t.Errorf("Envoy's ext_authz span %q has parent %s, want Envoy's root span for the request", parent.name, parent.parentSpanID)
		}
		w := want[c.attrs["portcullis.decision"]]
		for k, v := range w {
			if c.attrs[k] != v {
				t.Errorf("check span %s: %s = %q, want %q", c.attrs["portcullis.decision"], k, c.attrs[k], v)
			}
		}
		for k, v := range c.attrs {
			if strings.Contains(v, tk.Access) {
				t.Errorf("check span attribute %s holds the token", k)
			}
		}
		t.Logf("check span %s in Envoy's trace %s, parent %q (%s)", c.attrs["portcullis.decision"], c.traceID, parent.name, parent.spanID)
	}
	// The deny line names the trace of its check.
	var denyTrace string
	for _, c := range checks {
		if c.attrs["portcullis.decision"] == "deny" {
			denyTrace = c.traceID
		}
	}
	if denyTrace != "" && !strings.Contains(pc.tail(200), `"trace_id":"`+denyTrace+`"`) {
		t.Errorf("Portcullis's deny line lacks trace_id %s:\n%s", denyTrace, pc.tail(20))
	}
}
