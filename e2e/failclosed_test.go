//go:build e2e

package e2e

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Fail closed, shown through a real Envoy running the shipped envoy/envoy.yaml: Portcullis
// stopped, too slow, restarted, reloading and shutting down while requests flow.
//
// These tests stop and stall Portcullis, so they run against a pair of their own and leave the
// shared stack alone: a Portcullis rendered from envoy/portcullis.yaml and an Envoy rendered
// from envoy/envoy.yaml exactly as the shared ones are, in front of an echo upstream whose
// request count is theirs alone. Their Portcullis has one issuer more than the shipped file: a
// token issuer in this process (stallIssuer) whose key-set endpoint can hold a fetch, so a
// token with a kid it has not published yet keeps a check waiting inside Portcullis for as long
// as a test wants.

// What envoy/envoy.yaml's ext_authz filter says; failClosed checks the file still says it.
const (
	// envoyErrorStatus is status_on_error: Portcullis unreachable or too slow.
	envoyErrorStatus     = http.StatusServiceUnavailable
	envoyErrorStatusName = "ServiceUnavailable"
	// extAuthzTimeout is grpc_service.timeout.
	extAuthzTimeout     = 500 * time.Millisecond
	extAuthzTimeoutText = "0.5s"
)

// stallFloor is the stall issuer's min_refresh_interval: at most one unknown-kid fetch per floor.
const stallFloor = time.Second

// failStack is the Envoy and Portcullis pair of these tests.
type failStack struct {
	config   string // Portcullis's configuration, alone in its directory
	valid    []byte // its content as rendered
	grpcAddr string
	adminURL string
	envoyURL string
	envoyAdm string
	upstream *echoUpstream
	idp      *stallIssuer
	envoy    *proc
	client   *http.Client
	mu       sync.Mutex
	current  *proc // the running Portcullis
}

var failClosedStack struct {
	once sync.Once
	fc   *failStack
	err  error
}

// failClosed starts the pair on first use.
func failClosed(t *testing.T) *failStack {
	t.Helper()
	failClosedStack.once.Do(func() { failClosedStack.fc, failClosedStack.err = startFailStack() })
	if failClosedStack.err != nil {
		t.Fatalf("fail-closed stack: %v", failClosedStack.err)
	}
	return failClosedStack.fc
}

func startFailStack() (*failStack, error) {
	idp, err := newStallIssuer()
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	fc := &failStack{
		grpcAddr: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		adminURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2]),
		envoyURL: fmt.Sprintf("http://127.0.0.1:%d", ports[3]),
		envoyAdm: fmt.Sprintf("http://127.0.0.1:%d", ports[4]),
		upstream: startEchoUpstream(),
		idp:      idp,
		client: &http.Client{
			Timeout:       10 * time.Second,
			Transport:     &http.Transport{MaxIdleConnsPerHost: 16},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	// The configuration directory holds nothing else, so the file watcher sees only it.
	dir := filepath.Join(env.work, "failclosed")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	fc.config = filepath.Join(dir, "portcullis.yaml")
	if err := env.render("envoy/portcullis.yaml", fc.config, map[string]string{
		"grpc-addr":      strconv.Quote(fc.grpcAddr),
		"http-addr":      strconv.Quote(fmt.Sprintf("127.0.0.1:%d", ports[1])),
		"admin-addr":     strconv.Quote(fmt.Sprintf("127.0.0.1:%d", ports[2])),
		"issuer":         strconv.Quote(env.kc.issuer),
		"jwks-cache-dir": strconv.Quote(filepath.Join(env.work, "failclosed-jwks-cache")),
	}); err != nil {
		return nil, err
	}
	rendered, err := os.ReadFile(fc.config)
	if err != nil {
		return nil, err
	}
	const list = "\nissuers:\n"
	if !bytes.Contains(rendered, []byte(list)) {
		return nil, fmt.Errorf("%s: no top-level %q list to add the stall issuer to", fc.config, strings.TrimSpace(list))
	}
	fc.valid = bytes.Replace(rendered, []byte(list), []byte(list+idp.configEntry()), 1)
	if err := writeAtomically(fc.config, fc.valid); err != nil {
		return nil, err
	}
	if fc.current, err = env.startPortcullisWith("failclosed-portcullis", fc.config, fc.adminURL); err != nil {
		return nil, err
	}

	envoyConfig := filepath.Join(env.work, "failclosed-envoy.yaml")
	if err := env.render("envoy/envoy.yaml", envoyConfig, map[string]string{
		"admin-port":      strconv.Itoa(ports[4]),
		"listen-port":     strconv.Itoa(ports[3]),
		"portcullis-port": strconv.Itoa(ports[0]),
		"upstream-port":   strconv.Itoa(fc.upstream.port()),
	}); err != nil {
		return nil, err
	}
	if err := checkShippedExtAuthz(envoyConfig); err != nil {
		return nil, err
	}
	if fc.envoy, err = env.startEnvoyWith("failclosed-envoy", envoyConfig, fc.envoyAdm); err != nil {
		return nil, err
	}
	return fc, nil
}

// checkShippedExtAuthz fails when the ext_authz settings these tests rely on are not the ones of
// the (rendered) envoy/envoy.yaml.
func checkShippedExtAuthz(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc struct {
		StaticResources struct {
			Listeners []struct {
				FilterChains []struct {
					Filters []struct {
						TypedConfig struct {
							HTTPFilters []struct {
								Name        string `yaml:"name"`
								TypedConfig struct {
									GRPCService struct {
										Timeout string `yaml:"timeout"`
									} `yaml:"grpc_service"`
									FailureModeAllow *bool `yaml:"failure_mode_allow"`
									StatusOnError    struct {
										Code string `yaml:"code"`
									} `yaml:"status_on_error"`
								} `yaml:"typed_config"`
							} `yaml:"http_filters"`
						} `yaml:"typed_config"`
					} `yaml:"filters"`
				} `yaml:"filter_chains"`
			} `yaml:"listeners"`
		} `yaml:"static_resources"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, l := range doc.StaticResources.Listeners {
		for _, fch := range l.FilterChains {
			for _, f := range fch.Filters {
				for _, hf := range f.TypedConfig.HTTPFilters {
					if hf.Name != "envoy.filters.http.ext_authz" {
						continue
					}
					c := hf.TypedConfig
					if c.FailureModeAllow == nil || *c.FailureModeAllow {
						return fmt.Errorf("%s: ext_authz failure_mode_allow is not false", path)
					}
					if c.StatusOnError.Code != envoyErrorStatusName || c.GRPCService.Timeout != extAuthzTimeoutText {
						return fmt.Errorf("%s: ext_authz status_on_error %q, timeout %q; these tests expect %s and %s: update them",
							path, c.StatusOnError.Code, c.GRPCService.Timeout, envoyErrorStatusName, extAuthzTimeoutText)
					}
					return nil
				}
			}
		}
	}
	return fmt.Errorf("%s: no envoy.filters.http.ext_authz filter", path)
}

func writeAtomically(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (fc *failStack) portcullis() *proc {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.current
}

// stopPortcullis stops Portcullis (SIGTERM, then SIGKILL after the grace) and waits for it.
func (fc *failStack) stopPortcullis(t *testing.T) {
	t.Helper()
	fc.portcullis().stop(15 * time.Second)
}

// startPortcullis starts Portcullis again with its configuration and waits until it is ready.
func (fc *failStack) startPortcullis(t *testing.T) {
	t.Helper()
	p, err := env.startPortcullisWith("failclosed-portcullis", fc.config, fc.adminURL)
	if p != nil {
		fc.mu.Lock()
		fc.current = p
		fc.mu.Unlock()
	}
	if err != nil {
		t.Fatalf("start portcullis: %v", err)
	}
}

// restore is a cleanup: the next test finds Portcullis running with the rendered configuration.
func (fc *failStack) restore(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		if !fc.portcullis().exited() {
			return
		}
		if err := writeAtomically(fc.config, fc.valid); err != nil {
			t.Errorf("restore %s: %v", fc.config, err)
		}
		p, err := env.startPortcullisWith("failclosed-portcullis", fc.config, fc.adminURL)
		if p != nil {
			fc.mu.Lock()
			fc.current = p
			fc.mu.Unlock()
		}
		if err != nil {
			t.Errorf("restart portcullis: %v", err)
		}
	})
}

// ---- requests ------------------------------------------------------------------------------

// probe is one kind of request and the answer it must get while Portcullis is up.
type probe struct {
	name         string
	method, path string
	token        string
	want         int
}

// outcome is what one request got; safe to produce in any goroutine.
type outcome struct {
	probe      probe
	status     int
	reached    bool   // the echo upstream answered
	user       string // x-user-id the upstream saw
	err        error
	start, end time.Time
}

func (o outcome) String() string {
	if o.err != nil {
		return fmt.Sprintf("%s: %v", o.probe.name, o.err)
	}
	return fmt.Sprintf("%s: %d (reached upstream: %v)", o.probe.name, o.status, o.reached)
}

func (fc *failStack) do(p probe) outcome {
	o := outcome{probe: p, start: time.Now()}
	defer func() { o.end = time.Now() }()
	req, err := http.NewRequest(p.method, fc.envoyURL+p.path, nil)
	if err != nil {
		o.err = err
		return o
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := fc.client.Do(req)
	if err != nil {
		o.err = err
		return o
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		o.err = err
		return o
	}
	o.status = resp.StatusCode
	if resp.Header.Get("X-Echo") == "1" {
		o.reached = true
		var seen echoed
		if err := json.Unmarshal(body, &seen); err != nil {
			o.err = fmt.Errorf("upstream body: %v", err)
			return o
		}
		if v := seen.Headers["x-user-id"]; len(v) == 1 {
			o.user = v[0]
		}
	}
	o.end = time.Now()
	return o
}

// wantUp checks that p gets its decision, and reaches the upstream exactly when allowed.
func (fc *failStack) wantUp(t *testing.T, p probe) outcome {
	t.Helper()
	o := fc.do(p)
	if o.err != nil || o.status != p.want || o.reached != (p.want == http.StatusOK) {
		t.Fatalf("%s, want %d", o, p.want)
	}
	return o
}

// probes are requests with a known decision: allowed, refused for each reason, and public.
func (fc *failStack) probes(t *testing.T) []probe {
	t.Helper()
	alice := env.kc.login(t, "alice").Access
	bob := env.kc.login(t, "bob").Access
	carol := env.kc.login(t, "carol").Access
	return []probe{
		{"alice reads an order", http.MethodGet, "/api/orders/1", alice, http.StatusOK},
		{"carol reads users (admin)", http.MethodGet, "/api/admin/users", carol, http.StatusOK},
		{"stall-issuer token, published kid", http.MethodGet, "/api/orders/2", fc.idp.token(t, "a"), http.StatusOK},
		{"no token", http.MethodGet, "/api/orders/1", "", http.StatusUnauthorized},
		{"bob writes an order (not writer)", http.MethodPost, "/api/orders/1", bob, http.StatusForbidden},
		{"no rule", http.MethodGet, "/elsewhere", alice, http.StatusForbidden},
		{"public rule named by the route (/docs/)", http.MethodGet, "/docs/intro", "", http.StatusOK},
	}
}

// healthz is envoy.yaml's route with the check disabled.
var healthz = probe{"/healthz (ext_authz disabled on the route)", http.MethodGet, "/healthz", "", http.StatusOK}

// load sends probes from several goroutines until stopped (or max requests), keeping every outcome.
type load struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	out     []outcome
	count   atomic.Int64
	stopped sync.Once
}

func (fc *failStack) startLoad(probes []probe, workers, max int) *load {
	l := &load{stop: make(chan struct{})}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := w; ; i += workers {
				select {
				case <-l.stop:
					return
				default:
				}
				if l.count.Load() >= int64(max) {
					return
				}
				o := fc.do(probes[i%len(probes)])
				l.count.Add(1)
				l.mu.Lock()
				l.out = append(l.out, o)
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// waitFor waits until n more requests than now have completed.
func (l *load) waitFor(t *testing.T, n int64) {
	t.Helper()
	target := l.count.Load() + n
	deadline := time.Now().Add(10 * time.Second)
	for l.count.Load() < target {
		if time.Now().After(deadline) {
			t.Fatalf("load: %d requests in 10s, want %d", l.count.Load(), target)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (l *load) finish() []outcome {
	l.stopped.Do(func() { close(l.stop) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]outcome(nil), l.out...)
}

// tally counts outcomes by probe and status, for the log.
func tally(outs []outcome) string {
	counts := map[string]int{}
	for _, o := range outs {
		key := fmt.Sprintf("%s → %d", o.probe.name, o.status)
		if o.err != nil {
			key = o.probe.name + " → error"
		}
		counts[key]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %6d  %s", counts[k], k)
	}
	return b.String()
}

// ---- Envoy's counters ------------------------------------------------------------------------

// statsFilter picks the stats these tests read: the ext_authz cluster's and the filter's.
const statsFilter = `^(cluster\.portcullis\.|cluster\.upstream\.ext_authz\.|http\.ingress\.ext_authz\.)`

// statsClient has room for a busy machine: Envoy's admin answers on its main thread.
var statsClient = &http.Client{Timeout: 10 * time.Second}

// envoyStats reads Envoy's counters and gauges that statsFilter picks (admin /stats, text);
// histograms are left out.
func envoyStats(t *testing.T, adminURL string) map[string]int64 {
	t.Helper()
	resp, err := statsClient.Get(adminURL + "/stats?filter=" + url.QueryEscape(statsFilter))
	if err != nil {
		t.Fatalf("envoy stats: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("envoy stats: %v", err)
	}
	stats := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64); err == nil {
			stats[name] = n
		}
	}
	return stats
}

// statsDelta lists the counters of after that differ from before and whose name has one of the
// prefixes, for the log.
func statsDelta(before, after map[string]int64, prefixes ...string) string {
	var lines []string
	for name, v := range after {
		if v == before[name] {
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(name, p) {
				lines = append(lines, fmt.Sprintf("  %s: %d → %d", name, before[name], v))
				break
			}
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// Counters that move when a stream to Portcullis is reset or a connection closes under it.
// upstream_cx_protocol_error is not one: Envoy counts it when it closes a drained connection
// (after Portcullis's GOAWAY, once its last stream is answered) while still dispatching that
// read's frames ("Connection was closed while dispatching frames"), with no stream left.
var resetCounters = []string{
	"cluster.portcullis.upstream_rq_rx_reset",
	"cluster.portcullis.upstream_rq_tx_reset",
	"cluster.portcullis.upstream_cx_destroy_with_active_rq",
	"cluster.portcullis.upstream_cx_destroy_local_with_active_rq",
	"cluster.portcullis.upstream_cx_destroy_remote_with_active_rq",
	"cluster.portcullis.upstream_rq_timeout",
	"cluster.portcullis.upstream_rq_per_try_timeout",
}

// ---- the tests -------------------------------------------------------------------------------

// TestFailClosedPortcullisStopped: with Portcullis stopped, every checked request gets Envoy's
// status_on_error and none reaches the upstream, whatever its decision would have been (a
// public rule included: the check cannot run); the route with the check disabled still works.
func TestFailClosedPortcullisStopped(t *testing.T) {
	fc := failClosed(t)
	probes := fc.probes(t)
	for _, p := range probes {
		fc.wantUp(t, p)
	}

	fc.restore(t)
	fc.stopPortcullis(t)
	hits := fc.upstream.hits.Load()
	before := envoyStats(t, fc.envoyAdm)
	const rounds = 3
	for range rounds {
		for _, p := range probes {
			o := fc.do(p)
			if o.err != nil || o.status != envoyErrorStatus || o.reached {
				t.Errorf("Portcullis stopped: %s, want %d and not reached", o, envoyErrorStatus)
			}
		}
	}
	if n := fc.upstream.hits.Load() - hits; n != 0 {
		t.Errorf("Portcullis stopped: the upstream received %d requests, want 0", n)
	}
	after := envoyStats(t, fc.envoyAdm)
	t.Logf("Envoy counters, Portcullis stopped, %d checked requests:\n%s", rounds*len(probes),
		statsDelta(before, after, "cluster.portcullis.", "cluster.upstream.ext_authz", "http.ingress.ext_authz"))
	if got, want := after["cluster.upstream.ext_authz.error"]-before["cluster.upstream.ext_authz.error"], int64(rounds*len(probes)); got != want {
		t.Errorf("cluster.upstream.ext_authz.error grew by %d, want %d (one per checked request)", got, want)
	}

	hits = fc.upstream.hits.Load()
	fc.wantUp(t, healthz)
	if n := fc.upstream.hits.Load() - hits; n != 1 {
		t.Errorf("/healthz: the upstream received %d requests, want 1", n)
	}
}

// TestFailClosedChecksResumeAfterRestart: a Portcullis started again is used by the same Envoy
// process within a few seconds, with every decision as before.
func TestFailClosedChecksResumeAfterRestart(t *testing.T) {
	fc := failClosed(t)
	probes := fc.probes(t)
	envoyPID := fc.envoy.cmd.Process.Pid

	fc.restore(t)
	fc.stopPortcullis(t)
	if o := fc.do(probes[0]); o.status != envoyErrorStatus {
		t.Fatalf("Portcullis stopped: %s, want %d", o, envoyErrorStatus)
	}
	fc.startPortcullis(t) // returns once its /readyz answers 200
	ready := time.Now()
	const within = 3 * time.Second
	var last outcome
	for {
		if last = fc.do(probes[0]); last.status == http.StatusOK {
			break
		}
		if time.Since(ready) > within {
			t.Fatalf("Portcullis ready for %s, Envoy still answers %s", within, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("first allowed request through Envoy %s after Portcullis was ready", time.Since(ready).Round(time.Millisecond))
	for _, p := range probes {
		fc.wantUp(t, p)
	}
	if fc.envoy.exited() || fc.envoy.cmd.Process.Pid != envoyPID {
		t.Fatalf("Envoy was restarted or exited")
	}
}

// TestFailClosedPortcullisTooSlow: a check that Portcullis cannot answer within Envoy's timeout
// (its issuer's key set fetch hangs behind a kid not yet published) is answered 503 after the
// timeout, never 200, and never reaches the upstream, even though Portcullis would allow it later.
func TestFailClosedPortcullisTooSlow(t *testing.T) {
	fc := failClosed(t)
	fc.idp.waitFloor()
	kid := fc.idp.newKey(t)
	slow := probe{"stall-issuer token, kid not yet published", http.MethodGet, "/api/orders/3", fc.idp.token(t, kid), http.StatusOK}
	st := fc.idp.armStall(kid, 5*time.Second)
	defer st.release()

	hits := fc.upstream.hits.Load()
	before := envoyStats(t, fc.envoyAdm)
	const n = 4
	outs := make([]outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); outs[i] = fc.do(slow) }()
	}
	wg.Wait()
	select {
	case <-st.arrived:
	default:
		t.Fatalf("the stall issuer never saw a key set fetch: Portcullis did not wait on it")
	}
	for _, o := range outs {
		took := o.end.Sub(o.start)
		if o.err != nil || o.status != envoyErrorStatus || o.reached {
			t.Errorf("stalled check: %s, want %d and not reached", o, envoyErrorStatus)
		}
		// Envoy gave up at its timeout: not at once, and not when the stall ended (5 s); the
		// upper bound leaves room for a busy machine.
		if took < extAuthzTimeout-50*time.Millisecond || took > 3*time.Second {
			t.Errorf("stalled check answered after %s, want about %s (Envoy's ext_authz timeout)", took, extAuthzTimeout)
		}
	}
	if d := fc.upstream.hits.Load() - hits; d != 0 {
		t.Errorf("the upstream received %d requests, want 0", d)
	}
	after := envoyStats(t, fc.envoyAdm)
	t.Logf("Envoy counters, %d checks stalled beyond the timeout:\n%s", n,
		statsDelta(before, after, "cluster.portcullis.", "cluster.upstream.ext_authz", "http.ingress.ext_authz"))
	// Envoy's timer and the deadline Envoy sends (grpc-timeout) end at the same moment: a check
	// is either timed out by Envoy (ext_authz.error) or answered 503 by Portcullis at its
	// deadline (ext_authz.denied). Both are a 503, and nothing else happened to these checks.
	grew := func(c string) int64 { return after[c] - before[c] }
	if got := grew("cluster.upstream.ext_authz.error") + grew("cluster.upstream.ext_authz.denied"); got != n || grew("cluster.upstream.ext_authz.ok") != 0 {
		t.Errorf("cluster.upstream.ext_authz error+denied grew by %d, ok by %d; want %d and 0", got, grew("cluster.upstream.ext_authz.ok"), n)
	}

	// Released, the fetch brings the kid: the same token is allowed now, so the 503s above were
	// the stall and nothing else.
	st.release()
	deadline := time.Now().Add(3 * time.Second)
	for o := fc.do(slow); o.status != http.StatusOK; o = fc.do(slow) {
		if time.Now().After(deadline) {
			t.Fatalf("after the stall: %s, want 200", o)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFailClosedReloadUnderLoad: valid → invalid → valid configuration, reloaded while requests
// flow through Envoy; every request gets its decision, none a 503 or another status.
func TestFailClosedReloadUnderLoad(t *testing.T) {
	fc := failClosed(t)
	probes := append(fc.probes(t), healthz)
	reloaded := probe{"rule added by the reload", http.MethodGet, "/reloaded/x", "", http.StatusForbidden}
	fc.wantUp(t, reloaded) // no rule yet
	fc.restore(t)
	t.Cleanup(func() {
		if err := writeAtomically(fc.config, fc.valid); err == nil {
			_ = fc.portcullis().cmd.Process.Signal(syscall.SIGHUP)
		}
	})

	reloads := func(result string) float64 {
		return metricAt(t, fc.adminURL, `portcullis_config_reloads_total{result="`+result+`"}`)
	}
	// reload writes content, signals SIGHUP (the file watcher may reload too) and waits until
	// the reload counter with result has grown.
	reload := func(content []byte, result string) {
		t.Helper()
		n0 := reloads(result)
		if err := writeAtomically(fc.config, content); err != nil {
			t.Fatal(err)
		}
		if err := fc.portcullis().cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if err := waitUntil(fc.portcullis(), 5*time.Second, "reload "+result, func() error {
			if n := reloads(result); n <= n0 {
				return fmt.Errorf(`portcullis_config_reloads_total{result=%q} = %v`, result, n)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	invalid := append(bytes.Clone(fc.valid), []byte("\nno_such_setting: true\n")...)
	withRule := append(bytes.Clone(fc.valid), []byte(`  - name: reloaded
    match: { paths: ["/reloaded/**"] }
    public: true
`)...)

	l := fc.startLoad(probes, 4, 20000)
	defer l.finish()
	l.waitFor(t, 200)
	reload(invalid, "error")
	l.waitFor(t, 200)
	reload(withRule, "success")
	reloaded.want = http.StatusOK
	fc.wantUp(t, reloaded)
	l.waitFor(t, 200)
	reload(fc.valid, "success")
	l.waitFor(t, 200)
	outs := l.finish()

	var wrong []outcome
	for _, o := range outs {
		if o.err != nil || o.status != o.probe.want || o.reached != (o.probe.want == http.StatusOK) {
			wrong = append(wrong, o)
		}
	}
	t.Logf("%d requests during three reloads (invalid, valid, valid), %d not answered as expected:%s", len(outs), len(wrong), tally(outs))
	for i, o := range wrong {
		if i == 10 {
			t.Errorf("... and %d more", len(wrong)-10)
			break
		}
		t.Errorf("during the reloads: %s, want %d", o, o.probe.want)
	}
}

// TestFailClosedSIGTERMUnderLoad: checks in flight when Portcullis gets SIGTERM are answered
// (here: allowed, 200), with no stream to Portcullis reset; requests keep their decision until
// Portcullis stops listening, and get 503 only once SIGTERM was sent.
func TestFailClosedSIGTERMUnderLoad(t *testing.T) {
	fc := failClosed(t)
	probes := append(fc.probes(t), healthz)
	fc.idp.waitFloor()
	kid := fc.idp.newKey(t)
	slow := probe{"in flight at SIGTERM (stall-issuer kid not yet published)", http.MethodGet, "/api/orders/4", fc.idp.token(t, kid), http.StatusOK}
	// The stall ends when the test says so, or on its own well within Envoy's timeout.
	st := fc.idp.armStall(kid, 350*time.Millisecond)
	defer st.release()
	fc.restore(t)
	p := fc.portcullis()
	before := envoyStats(t, fc.envoyAdm)

	// The in-flight checks: all waiting inside Portcullis for the stalled key set fetch.
	const n = 6
	inflight := make([]outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); inflight[i] = fc.do(slow) }()
	}
	select {
	case <-st.arrived:
	case <-time.After(2 * time.Second):
		t.Fatal("no key set fetch reached the stall issuer")
	}
	if err := waitUntil(nil, 2*time.Second, "checks in flight", func() error {
		if a := envoyStats(t, fc.envoyAdm)["cluster.portcullis.upstream_rq_active"]; a < n {
			return fmt.Errorf("cluster.portcullis.upstream_rq_active = %d, want %d", a, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Load on top, then SIGTERM; the stall ends only once Portcullis has closed its listener.
	l := fc.startLoad(probes, 3, 20000)
	defer l.finish()
	l.waitFor(t, 10)
	sigterm := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitRefused(fc.grpcAddr, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	closed := time.Now()
	st.release()
	wg.Wait()
	if st.expired.Load() {
		t.Fatalf("the stall ended by itself before Portcullis closed its listener (%s after SIGTERM): too slow a machine for this test's timing",
			closed.Sub(sigterm).Round(time.Millisecond))
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatal("Portcullis still running 15s after SIGTERM")
	}
	exited := time.Now()
	if p.err != nil {
		t.Errorf("Portcullis exited with %v, want a clean exit after a graceful shutdown", p.err)
	}
	l.waitFor(t, 20) // and some more against a Portcullis that is gone
	outs := l.finish()
	after := envoyStats(t, fc.envoyAdm)

	allowed := 0
	for _, o := range inflight {
		if o.err != nil || o.status != http.StatusOK || !o.reached || o.user != "stall-user" {
			t.Errorf("in flight at SIGTERM: %s (user %q), want 200 for stall-user", o, o.user)
			continue
		}
		allowed++
	}
	var asDecided, unavailable, wrong int
	for _, o := range outs {
		switch {
		case o.err == nil && o.status == o.probe.want && o.reached == (o.probe.want == http.StatusOK):
			asDecided++
		case o.err == nil && o.status == envoyErrorStatus && !o.reached && o.end.After(sigterm):
			unavailable++
		default:
			wrong++
			if wrong <= 10 {
				t.Errorf("under load around SIGTERM: %s (started %s after SIGTERM), want %d, or %d after SIGTERM",
					o, o.start.Sub(sigterm).Round(time.Millisecond), o.probe.want, envoyErrorStatus)
			}
		}
	}
	t.Logf("SIGTERM: listener closed after %s, Portcullis exited after %s; %d of %d in flight answered 200; load: %d requests, %d as decided, %d answered %d after SIGTERM, %d otherwise:%s",
		closed.Sub(sigterm).Round(time.Millisecond), exited.Sub(sigterm).Round(time.Millisecond),
		allowed, n, len(outs), asDecided, unavailable, envoyErrorStatus, wrong, tally(outs))
	t.Logf("Envoy counters across the shutdown:\n%s", statsDelta(before, after, "cluster.portcullis.", "cluster.upstream.ext_authz", "http.ingress.ext_authz"))
	for _, c := range resetCounters {
		if d := after[c] - before[c]; d != 0 {
			t.Errorf("%s grew by %d across the shutdown, want 0", c, d)
		}
	}
}

// waitRefused waits until nothing accepts connections at addr.
func waitRefused(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return nil
		}
		c.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still accepts connections %s after SIGTERM", addr, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// ---- the stall issuer ------------------------------------------------------------------------

// stallIssuer is a token issuer served from this process on loopback. Its key-set endpoint
// answers with the keys published so far (kid "a" from the start); with a stall armed, the
// next fetch is held until released (or the stall's limit), then one more kid (made by newKey)
// is published and the answer includes it.
type stallIssuer struct {
	srv    *httptest.Server
	issuer string

	mu        sync.Mutex
	keys      map[string]*rsa.PrivateKey // every kid made, published or not
	published []string
	armed     *stall
	lastFetch time.Time
}

// stall is one held fetch.
type stall struct {
	publish string
	limit   time.Duration
	arrived chan struct{} // closed when the held fetch arrives
	done    chan struct{} // closed by release
	once    sync.Once
	expired atomic.Bool // the limit ended the hold, not release
}

func (s *stall) release() { s.once.Do(func() { close(s.done) }) }

func newStallIssuer() (*stallIssuer, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	si := &stallIssuer{keys: map[string]*rsa.PrivateKey{"a": k}, published: []string{"a"}}
	si.srv = httptest.NewServer(http.HandlerFunc(si.serveJWKS))
	si.issuer = si.srv.URL + "/stall"
	return si, nil
}

// configEntry is the issuer's entry for Portcullis's issuers list.
func (si *stallIssuer) configEntry() string {
	return fmt.Sprintf(`  - issuer: %q
    jwks_uri: %q
    audiences: ["orders-api"]
    algorithms: [RS256]
    min_refresh_interval: %s
    token_types: [Bearer]
`, si.issuer, si.srv.URL+"/jwks", stallFloor)
}

func (si *stallIssuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	si.mu.Lock()
	si.lastFetch = time.Now()
	st := si.armed
	si.armed = nil
	si.mu.Unlock()
	if st != nil {
		close(st.arrived)
		timer := time.NewTimer(st.limit)
		select {
		case <-st.done:
		case <-timer.C:
			st.expired.Store(true)
		case <-r.Context().Done():
		}
		timer.Stop()
		si.mu.Lock()
		si.published = append(si.published, st.publish)
		si.mu.Unlock()
	}
	si.mu.Lock()
	defer si.mu.Unlock()
	type jwk struct {
		Kty string `json:"kty"`
		Kid string `json:"kid"`
		Use string `json:"use"`
		Alg string `json:"alg"`
		N   string `json:"n"`
		E   string `json:"e"`
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	for _, kid := range si.published {
		pub := si.keys[kid].PublicKey
		set.Keys = append(set.Keys, jwk{"RSA", kid, "sig", "RS256",
			base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes())})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(set)
}

// newKey makes a signing key that is not published yet and returns its kid.
func (si *stallIssuer) newKey(t *testing.T) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	si.mu.Lock()
	defer si.mu.Unlock()
	kid := fmt.Sprintf("k%d", len(si.keys))
	si.keys[kid] = k
	return kid
}

// armStall holds the next key set fetch, up to limit, then publishes kid.
func (si *stallIssuer) armStall(kid string, limit time.Duration) *stall {
	st := &stall{publish: kid, limit: limit, arrived: make(chan struct{}), done: make(chan struct{})}
	si.mu.Lock()
	si.armed = st
	si.mu.Unlock()
	return st
}

// waitFloor waits until Portcullis may fetch again for an unknown kid: min_refresh_interval
// since the last fetch. Portcullis is a real process; its clock cannot be injected.
func (si *stallIssuer) waitFloor() {
	si.mu.Lock()
	last := si.lastFetch
	si.mu.Unlock()
	if wait := time.Until(last.Add(stallFloor + 100*time.Millisecond)); wait > 0 {
		time.Sleep(wait)
	}
}

// token is an RS256 access token of this issuer, signed with kid's key, for the api rule.
func (si *stallIssuer) token(t *testing.T, kid string) string {
	t.Helper()
	now := time.Now().Unix()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid}) + "." + enc(map[string]any{
		"iss": si.issuer, "aud": "orders-api", "sub": "stall-user", "typ": "Bearer",
		"preferred_username": "stall", "iat": now, "exp": now + 600,
	})
	sum := sha256.Sum256([]byte(input))
	si.mu.Lock()
	key := si.keys[kid]
	si.mu.Unlock()
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}
