package introspect

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// traced is a setup whose introspector traces to an in-memory exporter (tracer nil: not).
func traced(t *testing.T, on bool, mod func(*Options)) (*setup, *tracetest.InMemoryExporter, trace.Tracer) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tracer := tp.Tracer("test")
	s := newSetup(t, func(o *Options) {
		if on {
			o.Tracer = tracer
		}
		if mod != nil {
			mod(o)
		}
	})
	return s, exp, tracer
}

// checkIn is one check of testToken inside a span "check" of tracer, as the Authorizer makes
// it; it returns that span's context.
func checkIn(t *testing.T, s *setup, tracer trace.Tracer) (trace.SpanContext, Answer, error) {
	t.Helper()
	ctx, span := tracer.Start(context.Background(), "check")
	defer span.End()
	ans, err := s.in.Check(ctx, KeyOf(testToken), testToken, time.Time{})
	return span.SpanContext(), ans, err
}

// spanText is a span as one line: name, whose child, attributes, status.
func spanText(s tracetest.SpanStub, names map[trace.SpanID]string) string {
	parent := "root"
	if s.Parent.IsValid() {
		parent = names[s.Parent.SpanID()]
	}
	var attrs []string
	for _, a := range s.Attributes {
		attrs = append(attrs, string(a.Key)+"="+a.Value.Emit())
	}
	status := s.Status.Code.String()
	if s.Status.Description != "" {
		status += " " + s.Status.Description
	}
	return fmt.Sprintf("%s <- %s %s [%s] %s", s.Name, parent, s.SpanKind, strings.Join(attrs, " "), status)
}

// spanTexts are the exported spans, checked to be of one trace and never to carry the token,
// the secret or the answer.
func spanTexts(t *testing.T, exp *tracetest.InMemoryExporter) []string {
	t.Helper()
	spans := exp.GetSpans()
	names := map[trace.SpanID]string{}
	for _, s := range spans {
		names[s.SpanContext.SpanID()] = s.Name
	}
	var out []string
	for _, s := range spans {
		if s.SpanContext.TraceID() != spans[0].SpanContext.TraceID() {
			t.Errorf("span %s in trace %s, %s in %s", s.Name, s.SpanContext.TraceID(), spans[0].Name, spans[0].SpanContext.TraceID())
		}
		line := spanText(s, names)
		for _, secret := range []string{testToken, testSecret, base64.StdEncoding.EncodeToString([]byte(testClient + ":" + testSecret)), "alice"} {
			if strings.Contains(line, secret) {
				t.Errorf("span %s holds %q: %s", s.Name, secret, line)
			}
		}
		out = append(out, line)
	}
	return out
}

func compareSpans(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("spans\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

// TestCallSpans: the call a check makes is a child of the check's span, in its trace, with the
// issuer, the endpoint's host and port, the result and the status; a failure sets the error
// status; a check answered from the cache makes no span.
func TestCallSpans(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		down   bool
		result string // the call's portcullis.introspection.result
		tail   string // its http.response.status_code and status
		cached bool   // a second check is answered from the cache
	}{
		{name: "active", status: 200, body: activeBody(epoch.Add(time.Hour)), result: "active", tail: " http.response.status_code=200] Unset", cached: true},
		{name: "inactive", status: 200, body: `{"active": false}`, result: "inactive", tail: " http.response.status_code=200] Unset", cached: true},
		{name: "server error", status: 500, body: `{"active": true}`, result: "error",
			tail: " http.response.status_code=500] Error POST ENDPOINT: HTTP 500"},
		{name: "malformed", status: 200, body: `{"active": "yes", "sub": "alice"}`, result: "error",
			tail: " http.response.status_code=200] Error POST ENDPOINT: malformed answer: active is a string, not a boolean"},
		{name: "down", down: true, result: "error", tail: "] Error POST ENDPOINT: dial tcp HOST: connect: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, exp, tracer := traced(t, true, nil)
			s.p.answer(tt.status, tt.body)
			endpoint := s.p.srv.URL + "/introspect"
			u, _ := url.Parse(endpoint)
			if tt.down {
				s.p.srv.Close()
			}
			if _, _, err := checkIn(t, s, tracer); (err != nil) != (tt.result == "error") {
				t.Fatalf("err = %v", err)
			}
			tail := strings.NewReplacer("ENDPOINT", endpoint, "HOST", u.Host).Replace(tt.tail)
			compareSpans(t, spanTexts(t, exp), []string{
				"introspect.call <- check client [portcullis.issuer=" + s.p.srv.URL + " portcullis.introspection.result=" + tt.result +
					" http.request.method=POST server.address=" + u.Hostname() + " server.port=" + u.Port() + tail,
				"check <- root internal [] Unset",
			})

			// Again: from the cache, no call and no span; a failure was not cached, so it asks.
			exp.Reset()
			_, ans, _ := checkIn(t, s, tracer)
			if ans.Cached != tt.cached {
				t.Fatalf("second answer cached = %v", ans.Cached)
			}
			want := 1
			if !tt.cached {
				want = 2
			}
			if n := len(exp.GetSpans()); n != want {
				t.Errorf("second check: %d spans, want %d: %q", n, want, spanTexts(t, exp))
			}
		})
	}
}

// TestDiscoverySpan: a call that reads the endpoint from the discovery document first has a
// child span for it; the next call knows the endpoint and has none. A discovery that fails
// sets the error status of both spans.
func TestDiscoverySpan(t *testing.T) {
	t.Run("discovered", func(t *testing.T) {
		s, exp, tracer := traced(t, true, func(o *Options) { o.Endpoint = ""; o.CacheSize = 0 })
		s.p.answer(200, activeBody(epoch.Add(time.Hour)))
		u, _ := url.Parse(s.p.srv.URL)
		if _, _, err := checkIn(t, s, tracer); err != nil {
			t.Fatal(err)
		}
		issuer := "portcullis.issuer=" + s.p.srv.URL
		call := "introspect.call <- check client [" + issuer + " portcullis.introspection.result=active http.request.method=POST server.address=" +
			u.Hostname() + " server.port=" + u.Port() + " http.response.status_code=200] Unset"
		compareSpans(t, spanTexts(t, exp), []string{
			"introspect.discovery <- introspect.call client [" + issuer + " http.request.method=GET url.full=" + s.p.srv.URL +
				"/.well-known/openid-configuration http.response.status_code=200] Unset",
			call,
			"check <- root internal [] Unset",
		})
		exp.Reset()
		if _, _, err := checkIn(t, s, tracer); err != nil {
			t.Fatal(err)
		}
		compareSpans(t, spanTexts(t, exp), []string{call, "check <- root internal [] Unset"})
	})
	t.Run("refused", func(t *testing.T) {
		var issuer string
		s, exp, tracer := traced(t, true, func(o *Options) { o.Endpoint = ""; o.Issuer += "/nowhere"; issuer = o.Issuer })
		if _, _, err := checkIn(t, s, tracer); err == nil {
			t.Fatal("no error")
		}
		where := issuer + "/.well-known/openid-configuration"
		compareSpans(t, spanTexts(t, exp), []string{
			"introspect.discovery <- introspect.call client [portcullis.issuer=" + issuer + " http.request.method=GET url.full=" + where +
				" http.response.status_code=404] Error discovery: GET " + where + ": HTTP 404",
			"introspect.call <- check client [portcullis.issuer=" + issuer + " portcullis.introspection.result=error http.request.method=POST] Error discovery: GET " +
				where + ": HTTP 404",
			"check <- root internal [] Unset",
		})
	})
}

// TestSingleFlightOneSpan: of concurrent checks of one token, the one that makes the call has
// its span; those that wait for its answer have none.
func TestSingleFlightOneSpan(t *testing.T) {
	s, exp, tracer := traced(t, true, nil)
	s.p.answer(200, activeBody(epoch.Add(time.Hour)))
	s.p.hold = make(chan struct{})
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := checkIn(t, s, tracer); err != nil {
				t.Error(err)
			}
		}()
	}
	for {
		s.in.flightMu.Lock()
		waiting := int32(0)
		if f := s.in.flights[KeyOf(testToken)]; f != nil {
			waiting = f.waiters.Load()
		}
		s.in.flightMu.Unlock()
		if waiting == n-1 {
			break
		}
		runtime.Gosched()
	}
	close(s.p.hold)
	wg.Wait()
	calls := 0
	for _, sp := range exp.GetSpans() {
		if sp.Name == spanCall {
			calls++
		}
	}
	if calls != 1 || len(exp.GetSpans()) != n+1 {
		t.Errorf("%d introspect.call spans of %d spans, want 1 of %d", calls, len(exp.GetSpans()), n+1)
	}
}

// TestNoTracerNoSpans: without a tracer, a call makes no span, though the check's context
// carries a recording span of a working tracer provider; its status and error are those
// without tracing.
func TestNoTracerNoSpans(t *testing.T) {
	for _, status := range []int{200, 500} {
		s, exp, tracer := traced(t, false, func(o *Options) { o.Endpoint = "" })
		s.p.answer(status, activeBody(epoch.Add(time.Hour)))
		_, _, err := checkIn(t, s, tracer)
		if (err != nil) != (status != 200) {
			t.Fatalf("status %d: err = %v", status, err)
		}
		if got := spanTexts(t, exp); len(got) != 1 || !strings.HasPrefix(got[0], "check ") {
			t.Errorf("status %d: spans %q, want the check's only", status, got)
		}
	}
}
