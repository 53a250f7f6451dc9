package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/portcullis-authz/portcullis/internal/devidp"
)

// stalledIdP is a development identity provider whose every answer (discovery and key set)
// waits until release is called.
type stalledIdP struct {
	issuer  string
	release func()
}

func newStalledIdP(t *testing.T) *stalledIdP {
	t.Helper()
	idp, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	var once sync.Once
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-gate:
			idp.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	}))
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(func() { release(); ts.Close() })
	idp.SetIssuer(ts.URL + "/realms/demo")
	return &stalledIdP{issuer: idp.Issuer(), release: release}
}

const healthConfig = `
server:
  grpc_addr: "127.0.0.1:0"
  http_addr: "127.0.0.1:0"
  admin_addr: "127.0.0.1:0"
issuers:
%s
rules:
  - name: api
    match: { paths: ["/api/**"] }
    require: { claims: { email_verified: true } }
`

func healthIssuers(idps ...*stalledIdP) string {
	var b strings.Builder
	for _, p := range idps {
		fmt.Fprintf(&b, "  - issuer: %q\n    audiences: [orders-api]\n", p.issuer)
	}
	return b.String()
}

// probe asks what a load balancer, Envoy and Kubernetes would ask.
type probe struct {
	t      *testing.T
	srv    *Server
	health healthpb.HealthClient
	web    *http.Client
}

func newProbe(t *testing.T, srv *Server) *probe {
	t.Helper()
	conn, err := grpc.NewClient(srv.Addr("grpc").String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &probe{t: t, srv: srv, health: healthpb.NewHealthClient(conn), web: &http.Client{Timeout: 5 * time.Second}}
}

// grpcHealth is the status of both service names; UNKNOWN, with an error, if they differ or
// one cannot be asked.
func (p *probe) grpcHealth() healthpb.HealthCheckResponse_ServingStatus {
	p.t.Helper()
	var got []healthpb.HealthCheckResponse_ServingStatus
	for _, name := range []string{"", "envoy.service.auth.v3.Authorization"} {
		resp, err := p.health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: name})
		if err != nil {
			p.t.Errorf("health Check(%q): %v", name, err)
			return healthpb.HealthCheckResponse_UNKNOWN
		}
		got = append(got, resp.GetStatus())
	}
	if got[0] != got[1] {
		p.t.Errorf(`health: "" is %v, the Authorization service %v`, got[0], got[1])
		return healthpb.HealthCheckResponse_UNKNOWN
	}
	return got[0]
}

// readyz is the status code of /readyz.
func (p *probe) readyz() int {
	p.t.Helper()
	resp, err := p.web.Get("http://" + p.srv.Addr("admin").String() + "/readyz")
	if err != nil {
		p.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// gauge is portcullis_ready.
func (p *probe) gauge() float64 {
	p.t.Helper()
	families, err := p.srv.Registry().Gather()
	if err != nil {
		p.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "portcullis_ready" {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	p.t.Fatal("no portcullis_ready")
	return 0
}

// wantNotReady asserts that every view says not ready.
func (p *probe) wantNotReady(when string) {
	p.t.Helper()
	if got := p.grpcHealth(); got != healthpb.HealthCheckResponse_NOT_SERVING {
		p.t.Errorf("%s: gRPC health = %v, want NOT_SERVING", when, got)
	}
	if got := p.readyz(); got != http.StatusServiceUnavailable {
		p.t.Errorf("%s: /readyz = %d, want 503", when, got)
	}
	if got := p.gauge(); got != 0 {
		p.t.Errorf("%s: portcullis_ready = %v, want 0", when, got)
	}
}

// wantReadyEverywhere polls /readyz until it first answers ready, then asks gRPC health at
// once: it must already say SERVING.
func (p *probe) wantReadyEverywhere(when string) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.readyz() != http.StatusOK {
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: /readyz never answered ready", when)
		}
		time.Sleep(time.Millisecond)
	}
	if got := p.grpcHealth(); got != healthpb.HealthCheckResponse_SERVING {
		p.t.Errorf("%s: /readyz answered ready, gRPC health said %v at the same moment", when, got)
	}
	if got := p.gauge(); got != 1 {
		p.t.Errorf("%s: /readyz answered ready, portcullis_ready = %v", when, got)
	}
}

// listenOnly builds and listens, without running; run starts serving. The server is shut
// down when the test ends, whether or not it ran.
func listenOnly(t *testing.T, path string) (srv *Server, run func()) {
	t.Helper()
	srv, err := New(Options{ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var once sync.Once
	run = func() { once.Do(func() { go func() { done <- srv.Run(ctx) }() }) }
	t.Cleanup(func() {
		run()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv, run
}

// TestHealthIsReadiness: grpc.health.v1, /readyz and portcullis_ready are one fact, from
// before the first listener opens to shutdown, and through reloads that add or remove an
// issuer. Repeated, since a disagreement would be a matter of milliseconds.
func TestHealthIsReadiness(t *testing.T) {
	for i := range 5 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			first, second := newStalledIdP(t), newStalledIdP(t)
			path := filepath.Join(t.TempDir(), "portcullis.yaml")
			write := func(idps ...*stalledIdP) {
				if err := os.WriteFile(path, []byte(fmt.Sprintf(healthConfig, healthIssuers(idps...))), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			write(first)
			srv, run := listenOnly(t, path)
			p := newProbe(t, srv)
			p.wantNotReady("listening, not running, keys stalled")
			run()
			p.wantNotReady("running, keys stalled")

			first.release()
			p.wantReadyEverywhere("keys of the first issuer loaded")

			// A reload that adds an issuer without keys: not ready as soon as Reload returns.
			write(first, second)
			if err := srv.Reload(); err != nil {
				t.Fatal(err)
			}
			p.wantNotReady("reloaded with a stalled second issuer")
			// Removing it makes the server ready again at once.
			write(first)
			if err := srv.Reload(); err != nil {
				t.Fatal(err)
			}
			if got := p.grpcHealth(); got != healthpb.HealthCheckResponse_SERVING || p.readyz() != http.StatusOK || p.gauge() != 1 {
				t.Errorf("reloaded without the stalled issuer: gRPC health %v, /readyz %d, portcullis_ready %v", got, p.readyz(), p.gauge())
			}
			// Adding it back, then letting its keys load.
			write(first, second)
			if err := srv.Reload(); err != nil {
				t.Fatal(err)
			}
			p.wantNotReady("the stalled issuer back")
			second.release()
			p.wantReadyEverywhere("keys of the second issuer loaded")
		})
	}
}

// TestHealthGoesNotServingOnShutdown: a health watcher learns NOT_SERVING as shutdown begins,
// and readiness stays false.
func TestHealthGoesNotServingOnShutdown(t *testing.T) {
	idp := newStalledIdP(t)
	idp.release()
	path := filepath.Join(t.TempDir(), "portcullis.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(healthConfig, healthIssuers(idp))), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	p := newProbe(t, srv)
	p.wantReadyEverywhere("started")

	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	watch, err := p.health.Watch(watchCtx, &healthpb.HealthCheckRequest{Service: "envoy.service.auth.v3.Authorization"})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch before shutdown: %v %v", resp.GetStatus(), err)
	}
	cancel()
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch on shutdown: %v %v", resp.GetStatus(), err)
	}
	if srv.Ready() || p.gauge() != 0 {
		t.Errorf("shutting down: Ready() = %v, portcullis_ready = %v", srv.Ready(), p.gauge())
	}
	stopWatch() // a watch stream would hold the graceful stop for the whole grace period
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if srv.Ready() || p.gauge() != 0 {
		t.Errorf("after shutdown: Ready() = %v, portcullis_ready = %v", srv.Ready(), p.gauge())
	}
}
