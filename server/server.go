// Package server assembles Portcullis: it loads the configuration, runs one key-set cache per
// issuer, builds the decision engine, serves the gRPC ext_authz, HTTP forward-auth and admin
// listeners, and swaps the engine atomically when the configuration is reloaded.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/portcullis-authz/portcullis/authz"
	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/dpop"
	"github.com/portcullis-authz/portcullis/introspect"
	"github.com/portcullis-authz/portcullis/jwks"
	"github.com/portcullis-authz/portcullis/tracing"
)

// Options configure a Server.
type Options struct {
	// ConfigPath is the configuration file, read at start and on every reload.
	ConfigPath string
	Logger     *slog.Logger
	// Registry receives every metric; nil = a new registry with the Go and process collectors.
	Registry *prometheus.Registry
	// ShutdownGrace bounds how long in-flight checks may take to finish on shutdown.
	ShutdownGrace time.Duration
	// Reflection registers gRPC server reflection (for grpcurl); `portcullis dev` turns it on.
	Reflection bool
	// Tracing replaces parts of the tracer provider built for a tracing section (tests: an
	// in-memory exporter, the environment).
	Tracing tracing.Options
}

// Server runs the listeners of one Portcullis process.
type Server struct {
	opts     Options
	log      *slog.Logger
	reg      *prometheus.Registry
	metrics  *authz.Metrics
	intro    *introspection // builds the issuers' introspectors, counted on reg
	reloads  *prometheus.CounterVec
	reloadOK prometheus.Gauge
	keys     *keySets
	replay   *dpop.ReplayCache // the DPoP proofs seen, kept across configuration reloads
	authz    *authz.Authorizer
	httpAuth *authz.HTTPHandler // the HTTP forward-auth front, with forward_auth of cfg
	tracing  *tracing.Provider  // nil = tracing off
	cfg      *config.Loaded     // the configuration serving; guarded by mu
	mu       sync.Mutex
	ctx      context.Context
	cancel   context.CancelFunc
	grpc     *grpc.Server
	health   *health.Server // created by New, NOT_SERVING until ready; registered by Listen
	http     *http.Server
	admin    *http.Server
	addrs    map[string]net.Addr
	listenMu sync.Mutex

	// readiness is one fact, read by /readyz, portcullis_ready and Ready, and pushed to the
	// gRPC health service by setReadiness at the moment it changes.
	readyMu  sync.Mutex  // serialises setReadiness
	ready    atomic.Bool // set only after the health service says the same
	stopping bool        // shutdown began: not ready, whatever the key sets; guarded by readyMu
}

// New loads and validates the configuration and builds the server; it does not listen yet.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ShutdownGrace == 0 {
		opts.ShutdownGrace = 15 * time.Second
	}
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s := &Server{opts: opts, log: opts.Logger, reg: reg, addrs: map[string]net.Addr{},
		replay: dpop.NewReplayCache(dpop.DefaultReplayEntries)}
	s.metrics = authz.NewMetrics(reg)
	s.intro = &introspection{metrics: introspect.NewMetrics(reg), log: s.log}
	s.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_config_reloads_total",
		Help: "Configuration reloads, by result (success, error).",
	}, []string{"result"})
	s.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "portcullis_config_last_reload_successful",
		Help: "1 if the last configuration reload succeeded (or none was tried), 0 if it was refused.",
	})
	s.reloadOK.Set(1)
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "portcullis_ready",
		Help: "1 when every issuer has a usable key set (what /readyz reports), else 0.",
	}, func() float64 {
		if s.Ready() {
			return 1
		}
		return 0
	})
	reg.MustRegister(s.reloads, s.reloadOK, ready)
	s.reloads.WithLabelValues("success")
	s.reloads.WithLabelValues("error")
	// grpc-go's health server starts with "" SERVING: say NOT_SERVING until the key sets are
	// there, before anything listens.
	s.health = health.NewServer()
	for _, name := range healthServices {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.keys = newKeySets(s.ctx, jwks.NewMetrics(reg), s.log, s.setReadiness)
	var authzOpts []authz.AuthorizerOption
	authzLog := s.log
	if cfg.Tracing != nil {
		if s.tracing, err = tracing.New(s.ctx, cfg.Tracing, opts.Tracing); err != nil {
			s.cancel()
			return nil, err
		}
	}
	if s.tracing != nil {
		s.keys.tracer = s.tracing.Tracer()
		s.intro.tracer = s.tracing.Tracer()
		authzOpts = append(authzOpts, authz.WithObserver(s.tracing))
		authzLog = slog.New(tracing.LogHandler(s.log.Handler()))
	}
	engine, commit, err := s.prepare(cfg)
	if err != nil {
		s.shutdownTracing()
		s.cancel()
		return nil, err
	}
	commit()
	s.setReadiness() // key sets from files are there already
	s.cfg = cfg
	s.authz = authz.NewAuthorizer(engine, s.metrics, authzLog, authzOpts...)
	s.httpAuth = authz.NewHTTPHandler(s.authz, cfg.ForwardAuth)
	for _, w := range cfg.Warnings {
		s.log.Warn("configuration warning", "warning", w)
	}
	return s, nil
}

// prepare builds an engine for cfg without disturbing the one serving.
func (s *Server) prepare(cfg *config.Loaded) (*authz.Engine, func(), error) {
	caches, commit, err := s.keys.build(cfg)
	if err != nil {
		return nil, nil, err
	}
	engine, err := newEngine(cfg, caches, s.metrics, s.log, s.intro, s.replay)
	if err != nil {
		return nil, nil, err
	}
	return engine, commit, nil
}

// Reload reads the configuration file again. A configuration that does not validate is
// refused: the old one keeps serving, and the error is returned, logged and counted.
func (s *Server) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.reload()
	if err != nil {
		s.reloads.WithLabelValues("error").Inc()
		s.reloadOK.Set(0)
		s.log.Error("configuration reload refused; the previous configuration keeps serving", "error", err)
		return err
	}
	s.reloads.WithLabelValues("success").Inc()
	s.reloadOK.Set(1)
	s.log.Info("configuration reloaded", "rules", s.cfg.RuleSet.Len(), "issuers", len(s.cfg.Issuers))
	return nil
}

func (s *Server) reload() error {
	cfg, err := config.Load(s.opts.ConfigPath)
	if err != nil {
		return err
	}
	if cfg.Server != s.cfg.Server {
		return errors.New("server: listen addresses and TLS settings cannot change on reload; restart Portcullis")
	}
	if !reflect.DeepEqual(cfg.Tracing, s.cfg.Tracing) {
		return errors.New("tracing: the tracing section cannot change on reload; restart Portcullis")
	}
	engine, commit, err := s.prepare(cfg)
	if err != nil {
		return err
	}
	commit()
	s.authz.Swap(engine)
	s.httpAuth.SetForwardAuth(cfg.ForwardAuth)
	s.setReadiness() // an added issuer may have no keys yet; a removed one may have been the last missing
	s.cfg = cfg
	for _, w := range cfg.Warnings {
		s.log.Warn("configuration warning", "warning", w)
	}
	return nil
}

// Registry returns the metrics registry.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Addr returns the bound address of a listener ("grpc", "http", "admin") once Run listens.
func (s *Server) Addr(name string) net.Addr {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	return s.addrs[name]
}

// healthServices are the grpc.health.v1 service names Portcullis answers for: the server as a
// whole and the Envoy authorization service.
var healthServices = []string{"", authv3.Authorization_ServiceDesc.ServiceName}

// Ready reports whether every issuer has a usable key set: what /readyz, portcullis_ready and
// grpc.health.v1 say.
func (s *Server) Ready() bool { return s.ready.Load() }

// setReadiness recomputes readiness from the key sets and, if it changed, pushes it to the gRPC
// health service before Ready reports it. The key-set caches call it when they install a set,
// New and Reload after they change the set of issuers; no poll is involved.
func (s *Server) setReadiness() {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	if s.stopping {
		return
	}
	ready := s.keys.ready()
	if ready == s.ready.Load() {
		return
	}
	status := healthpb.HealthCheckResponse_NOT_SERVING
	if ready {
		status = healthpb.HealthCheckResponse_SERVING
	}
	for _, name := range healthServices {
		s.health.SetServingStatus(name, status)
	}
	s.ready.Store(ready)
	if ready {
		s.log.Info("ready: every issuer has a usable key set")
	} else {
		s.log.Warn("not ready: an issuer has no usable key set yet")
	}
}

// stopServing makes readiness false for good and the health service NOT_SERVING, which it
// stays (health.Server ignores later changes once shut down).
func (s *Server) stopServing() {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	s.stopping = true
	s.ready.Store(false)
	s.health.Shutdown()
}

// Listen opens every configured listener. Run serves on them.
func (s *Server) Listen() error {
	s.mu.Lock()
	sc, tlsCfg := s.cfg.Server, s.cfg.ServerTLS
	s.mu.Unlock()
	listen := func(name, addr string) (net.Listener, error) {
		if addr == "" {
			return nil, nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("server: %s listener: %w", name, err)
		}
		s.listenMu.Lock()
		s.addrs[name] = l.Addr()
		s.listenMu.Unlock()
		return l, nil
	}
	gl, err := listen("grpc", sc.GRPCAddr)
	if err != nil {
		return err
	}
	hl, err := listen("http", sc.HTTPAddr)
	if err != nil {
		gl.Close()
		return err
	}
	al, err := listen("admin", sc.AdminAddr)
	if err != nil {
		gl.Close()
		if hl != nil {
			hl.Close()
		}
		return err
	}
	var gopts []grpc.ServerOption
	if tlsCfg != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	s.grpc = authz.NewGRPCServer(s.authz, gopts...)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	if s.opts.Reflection {
		reflection.Register(s.grpc)
	}
	s.serveLater(func() error { return s.grpc.Serve(gl) })
	if hl != nil {
		s.http = &http.Server{Handler: s.httpAuth, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsCfg, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
		s.serveLater(func() error {
			if tlsCfg != nil {
				return s.http.ServeTLS(hl, "", "")
			}
			return s.http.Serve(hl)
		})
	}
	if al != nil {
		s.admin = &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
		s.serveLater(func() error { return s.admin.Serve(al) })
	}
	return nil
}

// serveLater runs serve in the background; a listener that fails logs the error and stops the
// whole server.
func (s *Server) serveLater(serve func() error) {
	go func() {
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("listener stopped", "error", err)
			s.cancel()
		}
	}()
}

// Run serves until ctx is done (or a listener fails), then shuts down gracefully: in-flight
// checks finish, within ShutdownGrace.
func (s *Server) Run(ctx context.Context) error {
	if s.grpc == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	s.log.Info("portcullis serving", "grpc", addrString(s.Addr("grpc")), "http", addrString(s.Addr("http")), "admin", addrString(s.Addr("admin")))
	select {
	case <-ctx.Done():
		return s.shutdown()
	case <-s.ctx.Done():
		_ = s.shutdown()
		return errors.New("server: a listener failed; see the log")
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return "off"
	}
	return a.String()
}

func (s *Server) shutdown() error {
	s.log.Info("shutting down; in-flight checks finish first")
	s.stopServing()
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownGrace)
	defer cancel()
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	var errs []error
	for _, h := range []*http.Server{s.http, s.admin} {
		if h != nil {
			if err := h.Shutdown(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	select {
	case <-stopped:
	case <-ctx.Done():
		s.grpc.Stop()
		errs = append(errs, errors.New("server: shutdown grace period over; remaining checks cut off"))
	}
	s.keys.stop()
	if err := s.shutdownTracing(); err != nil {
		errs = append(errs, err)
	}
	s.cancel()
	return errors.Join(errs...)
}

// shutdownTracing exports the spans still buffered, for at most five seconds.
func (s *Server) shutdownTracing() error {
	if s.tracing == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.tracing.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: exporting the last spans: %w", err)
	}
	return nil
}

func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	// With tracing, a scraper that asks for OpenMetrics gets it, with the check durations'
	// exemplars (trace IDs); the Prometheus text format has no exemplars.
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{EnableOpenMetrics: s.tracing != nil}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("POST /admin/jwks/refresh", s.refreshKeys)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !s.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			missing := s.keys.notReady()
			if len(missing) == 0 {
				// Shutting down, or a key set installed this instant and not yet reported.
				_, _ = w.Write([]byte("not ready\n"))
				return
			}
			_, _ = fmt.Fprintf(w, "not ready: no usable keys yet for %s\n", strings.Join(issuerNames(missing), ", "))
			for _, st := range missing {
				switch {
				case st.LastError != "":
					_, _ = fmt.Fprintf(w, "%s: the last fetch failed (%d in a row): %s\n", st.Issuer, st.ConsecutiveFailures, st.LastError)
				case st.LastAttempt.IsZero():
					_, _ = fmt.Fprintf(w, "%s: no fetch yet\n", st.Issuer)
				}
			}
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}
