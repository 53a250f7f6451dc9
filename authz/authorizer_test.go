package authz

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-authz/portcullis/config"
)

const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

// observerKey marks the context an Observer returned; statsKey the one a stats handler tagged.
type observerKey struct{}
type statsKey struct{}

// observed is what recordingObserver saw of one decision.
type observed struct {
	front    string
	req      Request
	metadata []string // traceparent in the incoming gRPC metadata
	tagged   any      // the stats handler's value in the context
	decision *Decision
	done     int
}

// recordingObserver records every Start and done, and marks the context it returns with the
// index of the decision.
type recordingObserver struct {
	mu   sync.Mutex
	seen []observed
}

func (o *recordingObserver) Start(ctx context.Context, front string, r *Request) (context.Context, func(*Decision)) {
	md, _ := metadata.FromIncomingContext(ctx)
	o.mu.Lock()
	defer o.mu.Unlock()
	i := len(o.seen)
	o.seen = append(o.seen, observed{front: front, req: *r, metadata: md.Get("traceparent"), tagged: ctx.Value(statsKey{})})
	return context.WithValue(ctx, observerKey{}, i), func(d *Decision) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.seen[i].decision = d
		o.seen[i].done++
	}
}

func (o *recordingObserver) observed() []observed {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]observed(nil), o.seen...)
}

// contextLog is a slog handler recording the observer's mark in the context of each record:
// the decision is logged with the context the observer returned.
type contextLog struct {
	mu    sync.Mutex
	marks []any
}

func (h *contextLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *contextLog) Handle(ctx context.Context, _ slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.marks = append(h.marks, ctx.Value(observerKey{}))
	return nil
}
func (h *contextLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *contextLog) WithGroup(string) slog.Handler      { return h }

// tagStats is a stats.Handler that, as otelgrpc's does with its span, tags each RPC's context,
// and records what it is shown: the method, the payloads' types and sizes, and the end.
type tagStats struct {
	mu     sync.Mutex
	events []string
	ended  chan struct{} // one send per End
}

func (s *tagStats) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	s.add("tag " + info.FullMethodName)
	return context.WithValue(ctx, statsKey{}, "rpc span")
}

func (s *tagStats) HandleRPC(_ context.Context, rs stats.RPCStats) {
	switch rs := rs.(type) {
	case *stats.InPayload:
		s.add(fmt.Sprintf("in %T %v", rs.Payload, rs.Length > 0))
	case *stats.OutPayload:
		s.add(fmt.Sprintf("out %T %v", rs.Payload, rs.Length > 0))
	case *stats.End:
		s.add(fmt.Sprintf("end %v", rs.Error))
		s.ended <- struct{}{}
	}
}

func (s *tagStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (s *tagStats) HandleConn(context.Context, stats.ConnStats)                       {}

func (s *tagStats) add(e string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
}

// TestObserverGRPC: over a real loopback connection, the Observer is shown each Check's front,
// the request read from the CheckRequest (its trace headers included), the incoming gRPC
// metadata and what a stats handler put in the context; the decision is made and logged with
// the context it returns; done gets the decision answered, once. The stats handler works on
// the method name and sizes, whatever the message types.
func TestObserverGRPC(t *testing.T) {
	e, idp := benchEngine(t, 10)
	obs := &recordingObserver{}
	logs := &contextLog{}
	a := NewAuthorizer(e, nil, slog.New(logs), WithObserver(obs))
	st := &tagStats{ended: make(chan struct{}, 2)}
	client := authv3.NewAuthorizationClient(startGRPC(t, a, grpc.StatsHandler(st)))
	tok := keycloakLike(t, idp, "RS256")
	reqs := []*authv3.CheckRequest{
		envoyCheck(&authv3.AttributeContext_HttpRequest{Method: "GET", Host: "api.example.com", Path: "/api/orders/7",
			Headers: map[string]string{"authorization": "Bearer " + tok, "traceparent": traceparent}}, nil),
		envoyCheck(&authv3.AttributeContext_HttpRequest{Method: "GET", Host: "api.example.com", Path: "/api/admin/x",
			Headers: map[string]string{"b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"}}, map[string]string{ContextExtensionRule: "admin"}),
	}
	var answers []*authv3.CheckResponse
	for _, req := range reqs {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", traceparent)
		resp, err := client.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		answers = append(answers, resp)
	}
	seen := obs.observed()
	if len(seen) != len(reqs) {
		t.Fatalf("observed %d decisions, want %d", len(seen), len(reqs))
	}
	for i, o := range seen {
		if want := RequestFromCheck(reqs[i]); o.front != FrontGRPC || !reflect.DeepEqual(o.req, want) {
			t.Errorf("%d: Start(%s, %+v), want (grpc, %+v)", i, o.front, o.req, want)
		}
		if !reflect.DeepEqual(o.metadata, []string{traceparent}) || o.tagged != "rpc span" {
			t.Errorf("%d: the context had metadata %v and stats tag %v", i, o.metadata, o.tagged)
		}
		if o.done != 1 || o.decision == nil || !proto.Equal(CheckResponse(o.decision), answers[i]) {
			t.Errorf("%d: done called %d times with %+v; answered %v", i, o.done, o.decision, answers[i])
		}
	}
	if seen[0].req.Headers["traceparent"] != traceparent || seen[1].req.Headers["b3"] == "" {
		t.Errorf("the trace headers are not in the requests: %v, %v", seen[0].req.Headers, seen[1].req.Headers)
	}
	if want := []any{0, 1}; !reflect.DeepEqual(logs.marks, want) {
		t.Errorf("decisions logged with observer contexts %v, want %v", logs.marks, want)
	}
	for range reqs {
		select { // the server ends an RPC after its client has the answer
		case <-st.ended:
		case <-time.After(10 * time.Second):
			t.Fatal("the stats handler saw no end of the RPC")
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	check := authv3.Authorization_Check_FullMethodName
	one := []string{"tag " + check, "in *authz.WireRequest true", "out *authz.Decision true", "end <nil>"}
	if want := append(append([]string{}, one...), one...); !reflect.DeepEqual(st.events, want) {
		t.Errorf("stats handler saw %v, want %v", st.events, want)
	}
}

// TestObserverHTTP: through the forward-auth handler, the Observer is shown the front, the
// original request as reconstructed (trace headers included) and the decision answered.
func TestObserverHTTP(t *testing.T) {
	e, idp := benchEngine(t, 10)
	obs := &recordingObserver{}
	logs := &contextLog{}
	h := NewHTTPHandler(NewAuthorizer(e, nil, slog.New(logs), WithObserver(obs)), config.ForwardAuth{TrustedHeaders: []string{"x-forwarded"}})
	tok := keycloakLike(t, idp, "RS256")
	var statuses []int
	for _, auth := range []string{"Bearer " + tok, ""} {
		r := httptest.NewRequest("GET", "http://portcullis.local/auth", nil)
		r.Header.Set("X-Forwarded-Method", "GET")
		r.Header.Set("X-Forwarded-Host", "api.example.com")
		r.Header.Set("X-Forwarded-Uri", "/api/orders/7")
		r.Header.Set("Traceparent", traceparent)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		statuses = append(statuses, w.Code)
	}
	if !reflect.DeepEqual(statuses, []int{200, 401}) {
		t.Fatalf("statuses %v, want [200 401]", statuses)
	}
	seen := obs.observed()
	if len(seen) != 2 {
		t.Fatalf("observed %d decisions, want 2", len(seen))
	}
	for i, o := range seen {
		if o.front != FrontHTTP || o.req.Method != "GET" || o.req.Host != "api.example.com" || o.req.Path != "/api/orders/7" || o.req.Headers["traceparent"] != traceparent {
			t.Errorf("%d: Start(%s, %+v)", i, o.front, o.req)
		}
		if o.done != 1 || o.decision == nil || o.decision.Status != statuses[i] {
			t.Errorf("%d: done called %d times with %+v, answered %d", i, o.done, o.decision, statuses[i])
		}
	}
	if want := []any{0, 1}; !reflect.DeepEqual(logs.marks, want) {
		t.Errorf("decisions logged with observer contexts %v, want %v", logs.marks, want)
	}
}

// startOnly is an Observer whose Start returns no done.
type startOnly struct{ n int }

func (s *startOnly) Start(ctx context.Context, _ string, _ *Request) (context.Context, func(*Decision)) {
	s.n++
	return ctx, nil
}

// TestObserverWithoutDone: done may be nil.
func TestObserverWithoutDone(t *testing.T) {
	e, _ := benchEngine(t, 10)
	o := &startOnly{}
	a := NewAuthorizer(e, nil, nil, WithObserver(o))
	if d := a.Authorize(context.Background(), FrontGRPC, &Request{Method: "GET", Host: "h", Path: "/healthz", Headers: map[string]string{}}); !d.Allow || o.n != 1 {
		t.Errorf("decision %+v, Start called %d times", d, o.n)
	}
}
