//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-authz/portcullis/internal/echo"
)

// Deadlines for the processes to come up. Keycloak is slow on two cores, slower still on its
// first start after an option change (it rebuilds itself).
const (
	keycloakStartTimeout   = 5 * time.Minute
	portcullisStartTimeout = 60 * time.Second
	envoyStartTimeout      = 60 * time.Second
)

// stack is everything TestMain starts once for the package.
type stack struct {
	root string // module root
	work string // temporary directory: binaries, rendered configs, logs

	portcullisBin    string
	envoyBin         string
	portcullisConfig string
	envoyConfig      string

	kc         *keycloak
	upstream   *echoUpstream
	portcullis *proc
	envoy      *proc

	envoyURL      string // the listener
	envoyAdminURL string
	adminURL      string // Portcullis admin: /readyz /metrics
	jwksCacheDir  string

	mu    sync.Mutex
	procs []*proc // every process started, for log tails
}

// env is the running stack; tests read it, TestMain owns it.
var env *stack

func TestMain(m *testing.M) {
	s, err := setUp()
	code := 1
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: set-up failed: %v\n", err)
		if s != nil {
			s.printLogTails(os.Stderr)
		}
	} else {
		env = s
		code = m.Run()
		if code != 0 {
			s.printLogTails(os.Stderr)
		}
	}
	if s != nil {
		s.tearDown(code != 0 || err != nil)
	}
	os.Exit(code)
}

func setUp() (*stack, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "portcullis-e2e-")
	if err != nil {
		return nil, err
	}
	s := &stack{root: filepath.Dir(wd), work: work}
	fmt.Fprintf(os.Stderr, "e2e: work directory %s\n", work)

	if s.envoyBin, err = findEnvoy(); err != nil {
		return s, err
	}
	kcHome, err := findKeycloak()
	if err != nil {
		return s, err
	}
	if err := s.buildPortcullis(); err != nil {
		return s, err
	}

	ports, err := freePorts(7)
	if err != nil {
		return s, err
	}
	kcPort, kcMgmtPort, grpcPort, httpPort, adminPort, envoyPort, envoyAdminPort :=
		ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6]

	start := time.Now()
	s.kc, err = startKeycloak(s, kcHome, kcPort, kcMgmtPort)
	if err != nil {
		return s, err
	}
	fmt.Fprintf(os.Stderr, "e2e: keycloak ready in %s at %s\n", time.Since(start).Round(time.Millisecond), s.kc.base)

	s.upstream = startEchoUpstream()
	upstreamPort := s.upstream.port()

	s.jwksCacheDir = filepath.Join(work, "jwks-cache")
	s.adminURL = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	s.portcullisConfig = filepath.Join(work, "portcullis.yaml")
	if err := s.render("envoy/portcullis.yaml", s.portcullisConfig, map[string]string{
		"grpc-addr":      strconv.Quote(fmt.Sprintf("127.0.0.1:%d", grpcPort)),
		"http-addr":      strconv.Quote(fmt.Sprintf("127.0.0.1:%d", httpPort)),
		"admin-addr":     strconv.Quote(fmt.Sprintf("127.0.0.1:%d", adminPort)),
		"issuer":         strconv.Quote(s.kc.issuer),
		"jwks-cache-dir": strconv.Quote(s.jwksCacheDir),
	}); err != nil {
		return s, err
	}
	if s.portcullis, err = s.startPortcullis(); err != nil {
		return s, err
	}

	s.envoyURL = fmt.Sprintf("http://127.0.0.1:%d", envoyPort)
	s.envoyAdminURL = fmt.Sprintf("http://127.0.0.1:%d", envoyAdminPort)
	s.envoyConfig = filepath.Join(work, "envoy.yaml")
	if err := s.render("envoy/envoy.yaml", s.envoyConfig, map[string]string{
		"admin-port":      strconv.Itoa(envoyAdminPort),
		"listen-port":     strconv.Itoa(envoyPort),
		"portcullis-port": strconv.Itoa(grpcPort),
		"upstream-port":   strconv.Itoa(upstreamPort),
	}); err != nil {
		return s, err
	}
	if s.envoy, err = s.startEnvoy(); err != nil {
		return s, err
	}
	fmt.Fprintf(os.Stderr, "e2e: stack up in %s (envoy %s, portcullis admin %s)\n",
		time.Since(start).Round(time.Millisecond), s.envoyURL, s.adminURL)
	return s, nil
}

// tearDown stops every process, newest first, and removes the work directory unless the run
// failed or PORTCULLIS_E2E_KEEP=1.
func (s *stack) tearDown(failed bool) {
	s.mu.Lock()
	procs := append([]*proc(nil), s.procs...)
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop(15 * time.Second)
	}
	if s.upstream != nil {
		s.upstream.Close()
	}
	if failed || os.Getenv("PORTCULLIS_E2E_KEEP") == "1" {
		fmt.Fprintf(os.Stderr, "e2e: configs and logs kept in %s\n", s.work)
		return
	}
	os.RemoveAll(s.work)
}

func (s *stack) printLogTails(w io.Writer) {
	s.mu.Lock()
	procs := append([]*proc(nil), s.procs...)
	s.mu.Unlock()
	for _, p := range procs {
		fmt.Fprintf(w, "\n===== last lines of %s (%s) =====\n%s", p.name, p.logPath, p.tail(60))
	}
}

// ---- locating and building the pieces ----------------------------------------------------

func cacheDir() string {
	if d := os.Getenv("PORTCULLIS_CACHE"); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "portcullis")
}

func findEnvoy() (string, error) {
	if p := os.Getenv("PORTCULLIS_ENVOY"); p != "" {
		return p, nil
	}
	matches, _ := filepath.Glob(filepath.Join(cacheDir(), "envoy-*", "lib", "python3*", "site-packages", "envoy", "_bin", "envoy"))
	if len(matches) > 0 {
		sort.Strings(matches)
		return matches[len(matches)-1], nil
	}
	if p, err := exec.LookPath("envoy"); err == nil {
		return p, nil
	}
	return "", errors.New("no envoy binary: run scripts/install-envoy.sh (or scripts/e2e.sh), or set PORTCULLIS_ENVOY")
}

func findKeycloak() (string, error) {
	if d := os.Getenv("PORTCULLIS_KEYCLOAK_HOME"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "bin", "kc.sh")); err != nil {
			return "", fmt.Errorf("PORTCULLIS_KEYCLOAK_HOME=%s: %w", d, err)
		}
		return d, nil
	}
	matches, _ := filepath.Glob(filepath.Join(cacheDir(), "keycloak-*", ".portcullis-installed"))
	if len(matches) == 0 {
		return "", errors.New("no Keycloak: run scripts/install-keycloak.sh (or scripts/e2e.sh), or set PORTCULLIS_KEYCLOAK_HOME")
	}
	sort.Strings(matches)
	return filepath.Dir(matches[len(matches)-1]), nil
}

func (s *stack) buildPortcullis() error {
	if bin := os.Getenv("PORTCULLIS_BIN"); bin != "" {
		s.portcullisBin = bin // a prebuilt binary, e.g. a release candidate
		return nil
	}
	s.portcullisBin = filepath.Join(s.work, "portcullis")
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", s.portcullisBin, "./cmd/portcullis")
	cmd.Dir = s.root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/portcullis: %v\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "e2e: built portcullis in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// render writes the repository file rel with the `# @name` substitution points replaced, by
// the same script docker-compose.yaml uses, so the two cannot drift apart.
func (s *stack) render(rel, out string, values map[string]string) error {
	args := []string{filepath.Join(s.root, "scripts", "render-config.sh"), filepath.Join(s.root, rel), out}
	names := make([]string, 0, len(values))
	for k := range values {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		args = append(args, k+"="+values[k])
	}
	if b, err := exec.Command("sh", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("render %s: %v\n%s", rel, err, b)
	}
	return nil
}

// freePorts reserves n distinct loopback ports by listening on :0, then releases them.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ---- processes -------------------------------------------------------------------------------

// proc is a child process in its own process group, its output in a log file.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // valid after done is closed
}

func (s *stack) start(name string, extraEnv []string, bin string, args ...string) (*proc, error) {
	s.mu.Lock()
	n := 0
	for _, p := range s.procs {
		if strings.HasPrefix(p.name, name) {
			n++
		}
	}
	s.mu.Unlock()
	logName := name + ".log"
	if n > 0 {
		logName = fmt.Sprintf("%s-%d.log", name, n+1)
	}
	logPath := filepath.Join(s.work, logName)
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), extraEnv...)
	// Own process group, so that stop reaches grandchildren (kc.sh starts java); and a
	// SIGKILL if the test binary dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group of p (by its PID), then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Whatever is left in the group (a grandchild that ignored SIGTERM) goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// tail returns the last n lines of p's log.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error() + "\n"
	}
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// waitUntil polls check until it returns nil, p exits, or the timeout passes.
func waitUntil(p *proc, timeout time.Duration, what string, check func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited (%v) before %s", p.name, p.err, what)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %s: %v", what, timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

var probeClient = &http.Client{Timeout: 2 * time.Second}

// expectStatus is a waitUntil check: GET url answers want.
func expectStatus(url string, want int) func() error {
	return func() error {
		resp, err := probeClient.Get(url)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(body))
		}
		return nil
	}
}

func (s *stack) startPortcullis() (*proc, error) {
	return s.startPortcullisWith("portcullis", s.portcullisConfig, s.adminURL)
}

// startPortcullisWith runs `portcullis serve` with config and waits for adminURL/readyz.
func (s *stack) startPortcullisWith(name, config, adminURL string) (*proc, error) {
	p, err := s.start(name, nil, s.portcullisBin,
		"serve", "--config", config, "--log-level", "debug", "--log-format", "text")
	if err != nil {
		return nil, err
	}
	if err := waitUntil(p, portcullisStartTimeout, name+" /readyz", expectStatus(adminURL+"/readyz", http.StatusOK)); err != nil {
		return p, err
	}
	return p, nil
}

func (s *stack) startEnvoy() (*proc, error) {
	return s.startEnvoyWith("envoy", s.envoyConfig, s.envoyAdminURL)
}

// startEnvoyWith runs Envoy with config and waits for adminURL/ready.
func (s *stack) startEnvoyWith(name, config, adminURL string) (*proc, error) {
	// A random base id keeps this Envoy's shared memory apart from any other on the machine.
	baseID := strconv.Itoa(int(time.Now().UnixNano()%1_000_000) + 1000)
	p, err := s.start(name, nil, s.envoyBin,
		"-c", config, "--base-id", baseID, "--disable-hot-restart",
		"--concurrency", "2", "-l", "warning",
		// The access log goes to the log file; flush it often so tests can read it.
		"--file-flush-interval-msec", "100")
	if err != nil {
		return nil, err
	}
	if err := waitUntil(p, envoyStartTimeout, name+" /ready", expectStatus(adminURL+"/ready", http.StatusOK)); err != nil {
		return p, err
	}
	return p, nil
}

// restartPortcullis stops Portcullis and starts it again with the same configuration.
func (s *stack) restartPortcullis() error {
	s.portcullis.stop(10 * time.Second)
	p, err := s.startPortcullis()
	if p != nil {
		s.portcullis = p
	}
	return err
}

// ---- the echo upstream ----------------------------------------------------------------------

// echoUpstream stands for the protected service: it answers every request with JSON describing
// what it received, and counts requests so tests can prove a denied one never arrived.
type echoUpstream struct {
	*httptest.Server
	hits atomic.Int64
}

// echoed is the upstream's answer body.
type echoed struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Headers map[string][]string `json:"headers"` // lower-case names, every value received
}

// startEchoUpstream serves the upstream of envoy/README.md (internal/echo, which
// examples/echo runs), counting the requests that reach it.
func startEchoUpstream() *echoUpstream {
	e := &echoUpstream{}
	h := echo.Handler()
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		h.ServeHTTP(w, r)
	}))
	return e
}

func (e *echoUpstream) port() int {
	return e.Listener.Addr().(*net.TCPAddr).Port
}

// ---- requests through Envoy -----------------------------------------------------------------

// reply is an answer from Envoy, with the upstream's view when the request got through.
type reply struct {
	status  int
	header  http.Header
	body    []byte
	reached bool   // the echo upstream answered
	seen    echoed // what the upstream received, when reached
}

var envoyClient = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// call sends method path through Envoy with an optional bearer token. Extra headers are set
// with their names exactly as given (no canonicalisation), to try odd spellings.
func call(t *testing.T, method, path, token string, extra map[string]string) reply {
	t.Helper()
	return callAt(t, env.envoyURL, method, path, token, extra)
}

// callAt is call through the proxy listening at base. An extra "Host" sets the request's host.
func callAt(t *testing.T, base, method, path, token string, extra map[string]string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range extra {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header[k] = append(req.Header[k], v)
	}
	resp, err := envoyClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, body: body}
	if resp.Header.Get("X-Echo") == "1" {
		r.reached = true
		if err := json.Unmarshal(body, &r.seen); err != nil {
			t.Fatalf("%s %s: upstream body: %v: %s", method, path, err, body)
		}
	}
	return r
}

func (r reply) String() string {
	body := bytes.TrimSpace(r.body)
	if r.reached {
		// The upstream echoes the request it got, Authorization and Cookie included: never print it.
		body = []byte("(the upstream's echo, withheld: it carries the request's credentials)")
	}
	return fmt.Sprintf("%d %s (www-authenticate %q)", r.status, body, r.header.Get("Www-Authenticate"))
}
