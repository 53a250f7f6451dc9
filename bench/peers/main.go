// Command peers measures Portcullis against what a platform team would pick instead, doing the
// same job, through one real Envoy and over gRPC straight: Envoy with no authorization (the
// floor), Envoy's own jwt_authn + RBAC, Envoy's ext_authz over gRPC and over HTTP to
// Portcullis, ext_authz to a do-nothing server, and, over gRPC straight, Portcullis, the
// do-nothing server and OPA-Envoy with an equivalent Rego policy. Each target must first pass
// probes proving it verifies (a good token allowed; a tampered payload, a foreign key, alg
// none, HS256 keyed with the public key, an expired token, a wrong audience, a missing role
// and no token refused); one that fails is reported and not measured. Then, in alternating
// slices of one run, with the same token (cached) and with a distinct token per request
// (uncached), it records throughput, p50, p99 and each process's CPU per request, and prints
// the medians of the per-round ratios. After the measured rounds, one more slice per mode of
// gRPC straight → Portcullis, ext_authz gRPC → Portcullis, gRPC straight → do-nothing and gRPC
// straight → OPA-Envoy is CPU-profiled (the server process only), and the report shows where
// each server's CPU goes. With -markdown it rewrites its section of BENCHMARKS.md.
//
// Profiling Portcullis needs a build with -tags benchprofile (cmd/portcullis/benchprofile.go),
// which make bench-peers builds; for any other binary pass -profile 0.
//
//	make bench-peers
//	go build -tags benchprofile -o bin/portcullis-bench ./cmd/portcullis
//	go run ./bench/peers -envoy "$(scripts/install-envoy.sh)" -opa "$(scripts/install-opa-envoy.sh)" \
//	    -portcullis bin/portcullis-bench -rounds 2 -slice 1s -profile 2s
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-authz/portcullis/bench/internal/load"
	"github.com/portcullis-authz/portcullis/internal/benchprofile"
	"github.com/portcullis-authz/portcullis/internal/devidp"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux architecture
// Go supports.
const clockTicks = 100

type options struct {
	envoy, opa, portcullis string
	rounds                 int
	slice                  time.Duration
	concurrency, grpcConns int
	cache, pool            int
	only                   *regexp.Regexp
	variants               bool
	profile                time.Duration
	profileDir             string
	markdown               string
}

func main() {
	var o options
	flag.StringVar(&o.envoy, "envoy", "", "the envoy binary (scripts/install-envoy.sh prints it)")
	flag.StringVar(&o.opa, "opa", "", "the opa-envoy binary (scripts/install-opa-envoy.sh prints it); empty = OPA-Envoy not measured")
	flag.StringVar(&o.portcullis, "portcullis", "", "the portcullis binary (make build)")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds; each measures every target once cached and once uncached, in alternating order")
	flag.DurationVar(&o.slice, "slice", 3*time.Second, "length of one target's slice")
	flag.IntVar(&o.concurrency, "concurrency", 16, "concurrent callers (HTTP: one connection each)")
	flag.IntVar(&o.grpcConns, "grpc-conns", 4, "client connections to each gRPC target")
	flag.IntVar(&o.cache, "cache", 1000, "token cache entries of Portcullis, jwt_authn and OPA")
	flag.IntVar(&o.pool, "pool", 0, "distinct tokens cycled through in the uncached slices (default 4 × -cache: more than any cache holds, so cycling through them misses)")
	only := flag.String("only", "", "measure only the targets whose name matches this regular expression (the probes still run on all)")
	flag.BoolVar(&o.variants, "variants", false, "also measure ext_authz gRPC → Portcullis with Envoy's defaults (every header sent), and with the shipped configuration plus encode_raw_headers, plus charge_cluster_response_stats: false, or plus enable_dynamic_metadata_ingestion: false")
	flag.DurationVar(&o.profile, "profile", 5*time.Second, "length of the CPU-profiled slice of each profiled target and mode, after the measured rounds (rounded up to whole seconds, OPA's profile endpoint's unit); 0 = no profiles. Portcullis must be built with -tags benchprofile")
	flag.StringVar(&o.profileDir, "profile-dir", "", "keep the CPU profiles in this directory (NAME-MODE.prof, for go tool pprof); empty = a temporary one, removed")
	flag.StringVar(&o.markdown, "markdown", "", "rewrite this file's bench-peers section (BENCHMARKS.md) with the results")
	serveNoop := flag.String("serve-noop", "", "internal: serve the do-nothing ext_authz server on this address")
	serveMimic := flag.String("serve-mimic", "", "internal: with -serve-noop, also serve on this address a do-nothing server answering the CheckResponse in the file -mimic-answer")
	mimicAnswer := flag.String("mimic-answer", "", "internal: see -serve-mimic")
	flag.Parse()
	if *serveNoop != "" {
		runNoop(*serveNoop, *serveMimic, *mimicAnswer)
		return
	}
	if o.envoy == "" || o.portcullis == "" {
		log.Fatal("peers: -envoy and -portcullis are required (make bench-peers sets them)")
	}
	for _, p := range []*string{&o.envoy, &o.opa, &o.portcullis} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				log.Fatalf("peers: %v", err)
			}
			*p = abs
		}
	}
	if o.pool == 0 {
		o.pool = 4 * o.cache
	}
	o.profile = time.Duration(math.Ceil(o.profile.Seconds())) * time.Second
	var err error
	if o.only, err = regexp.Compile(*only); err != nil {
		log.Fatalf("peers: -only: %v", err)
	}
	if err := run(o); err != nil {
		log.Fatalf("peers: %v", err)
	}
}

// mimicTarget is the variant whose do-nothing server answers Portcullis's allow.
const mimicTarget = "variant: ext_authz gRPC → do-nothing answering Portcullis's allow"

// captureAllow asks Portcullis at addr to check req and writes its answer, which must be an
// allow, to path, for load.Mimic.
func captureAllow(addr string, req []byte, path string) error {
	var in authv3.CheckRequest
	if err := proto.Unmarshal(req, &in); err != nil {
		return err
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(cc).Check(ctx, &in)
	if err != nil {
		return fmt.Errorf("capture Portcullis's allow: %w", err)
	}
	if resp.GetOkResponse() == nil {
		return fmt.Errorf("capture Portcullis's allow: the good token was not allowed: %v", resp.GetStatus())
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// runNoop serves the do-nothing ext_authz server, in its own process so that its CPU is its own,
// and, on mimicAddr, the do-nothing server answering the CheckResponse in the file mimicAnswer;
// with benchprofile.Env set, SIGUSR1 toggles a CPU profile of the process.
func runNoop(addr, mimicAddr, mimicAnswer string) {
	benchprofile.FromEnv(os.Stderr)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	if mimicAddr != "" {
		ml, err := net.Listen("tcp", mimicAddr)
		if err != nil {
			log.Fatal(err)
		}
		go func() { log.Fatal(load.NewMimicServer(&load.Mimic{Path: mimicAnswer}).Serve(ml)) }()
	}
	log.Fatal(load.NewNoopServer().Serve(l))
}

// target is one thing measured.
type target struct {
	name     string
	baseline bool     // allows everything by design (no auth, do-nothing): probes shown, not required
	procs    []string // the processes doing its work, for CPU per request
	http     bool     // an HTTP request through Envoy; else a CheckRequest over gRPC
	call     func(w int, req []byte) outcome
	probes   []probeResult
	measured bool
	slices   [2][]slice // per mode (cached, uncached), per round
}

const (
	cached = iota
	uncached
)

// modeWords name the modes, by index, in a word; modeNames head their tables.
var modeWords = [2]string{"cached", "uncached"}

var modeNames = [2]string{"cached (same token)", "uncached (a distinct token per request)"}

func run(o options) error {
	dir, err := os.MkdirTemp("", "bench-peers-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	idp, err := devidp.NewFor(jwa.RS256)
	if err != nil {
		return err
	}
	idp.SetIssuer(issuer)
	jwks := string(idp.JWKS())
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), []byte(jwks), 0o600); err != nil {
		return err
	}
	prs, err := probes(idp)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "peers: minting %d RS256 tokens for the uncached slices\n", o.pool)
	toks, err := pool(idp, o.pool)
	if err != nil {
		return err
	}

	ports, err := freePorts(24)
	if err != nil {
		return err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	procs := map[string]*exec.Cmd{}
	defer func() {
		for _, c := range procs {
			_ = c.Process.Kill()
			_, _ = c.Process.Wait()
		}
	}()
	start := func(name string, args ...string) error {
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			return err
		}
		c := exec.CommandContext(ctx, args[0], args[1:]...)
		c.Dir, c.Stdout, c.Stderr = dir, logf, logf
		if o.profile > 0 && (name == "portcullis" || name == "do-nothing") {
			c.Env = append(os.Environ(), benchprofile.Env+"="+profilePath(dir, name))
		}
		if err := c.Start(); err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		procs[name] = c
		return nil
	}

	// Portcullis: gRPC 0, HTTP 1, admin 2. Do-nothing: 3. OPA: gRPC 4, HTTP 5, diagnostics 6.
	// Envoy: admin 7, listeners from 8. The do-nothing process's second server (load.Mimic): the
	// last.
	mimicPort := len(ports) - 1
	if err := os.WriteFile(filepath.Join(dir, "portcullis.yaml"), []byte(portcullisConfig(addr(0), addr(1), addr(2), o.cache)), 0o600); err != nil {
		return err
	}
	if err := start("portcullis", o.portcullis, "serve", "--config", "portcullis.yaml", "--log-level", "error"); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// The same process serves the do-nothing server that answers Portcullis's allow
	// (load.Mimic; the answer is captured once Portcullis is up, below).
	mimicAnswer := filepath.Join(dir, "portcullis-allow.pb")
	if err := start("do-nothing", self, "-serve-noop", addr(3), "-serve-mimic", addr(mimicPort), "-mimic-answer", mimicAnswer); err != nil {
		return err
	}
	if o.opa != "" {
		if err := os.WriteFile(filepath.Join(dir, "policy.rego"), []byte(opaPolicy(jwks)), 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "opa.yaml"), []byte(opaConfig(addr(4), o.cache)), 0o600); err != nil {
			return err
		}
		args := []string{o.opa, "run", "--server", "--addr", addr(5), "--diagnostic-addr", addr(6),
			"--config-file", "opa.yaml", "--log-level", "error", "--disable-telemetry"}
		if o.profile > 0 {
			args = append(args, "--pprof") // net/http/pprof's handlers on --addr
		}
		if err := start("opa-envoy", append(args, "policy.rego")...); err != nil {
			return err
		}
	}

	lean := extAuthz{cluster: "portcullis_grpc", allowedHeaders: shippedAllowedHeaders}
	type envoyTarget struct {
		name, proc string
		filters    string
	}
	ets := []envoyTarget{
		{"envoy, no auth", "", ""},
		{"envoy jwt_authn + RBAC", "", jwtAuthnFilters(jwks, o.cache)},
		{"envoy ext_authz gRPC → portcullis", "portcullis", lean.filter()},
		{"envoy ext_authz HTTP → portcullis", "portcullis", extAuthz{cluster: "portcullis_http", http: true}.filter()},
		{"envoy ext_authz gRPC → do-nothing", "do-nothing", extAuthz{cluster: "noop_grpc", allowedHeaders: lean.allowedHeaders, rawHeaders: lean.rawHeaders, noClusterStats: lean.noClusterStats}.filter()},
	}
	if o.variants {
		ets = append(ets,
			envoyTarget{"variant: Envoy's defaults (every header)", "portcullis", extAuthz{cluster: "portcullis_grpc"}.filter()},
			envoyTarget{"variant: shipped + encode_raw_headers", "portcullis", extAuthz{cluster: "portcullis_grpc", allowedHeaders: lean.allowedHeaders, rawHeaders: true}.filter()},
			envoyTarget{"variant: shipped + no cluster stats", "portcullis", extAuthz{cluster: "portcullis_grpc", allowedHeaders: lean.allowedHeaders, noClusterStats: true}.filter()},
			envoyTarget{"variant: shipped + no dynamic metadata", "portcullis", extAuthz{cluster: "portcullis_grpc", allowedHeaders: lean.allowedHeaders, noMetadata: true}.filter()},
			envoyTarget{mimicTarget, "do-nothing", extAuthz{cluster: "mimic_grpc", allowedHeaders: lean.allowedHeaders}.filter()},
		)
	}
	if 8+len(ets) > mimicPort {
		return errors.New("more listeners than ports")
	}
	var ls []listener
	for i, et := range ets {
		ls = append(ls, listener{name: fmt.Sprintf("l%d", i), port: ports[8+i], filters: et.filters})
	}
	boot := envoyBootstrap(ports[7], ls,
		map[string]string{"portcullis_grpc": addr(0), "noop_grpc": addr(3), "mimic_grpc": addr(mimicPort)},
		map[string]string{"portcullis_http": addr(1)})
	if err := os.WriteFile(filepath.Join(dir, "envoy.yaml"), []byte(boot), 0o600); err != nil {
		return err
	}
	if err := start("envoy", o.envoy, "-c", "envoy.yaml", "--concurrency", "1", "--disable-hot-restart",
		"--base-id", strconv.Itoa(ports[7]), "-l", "error"); err != nil {
		return err
	}

	// Targets and their clients.
	var targets []*target
	for i, et := range ets {
		c := newHTTPClient(addr(8+i), o.concurrency)
		defer c.close()
		t := &target{name: et.name, http: true, procs: []string{"envoy"}, call: c.do, baseline: et.name == "envoy, no auth" || strings.HasSuffix(et.name, "do-nothing") || et.name == mimicTarget}
		if et.proc != "" {
			t.procs = append(t.procs, et.proc)
		}
		targets = append(targets, t)
	}
	straight := []struct{ name, proc, addr string }{{"gRPC straight → portcullis", "portcullis", addr(0)}, {"gRPC straight → do-nothing", "do-nothing", addr(3)}}
	if o.opa != "" {
		straight = append(straight, struct{ name, proc, addr string }{"gRPC straight → OPA-Envoy", "opa-envoy", addr(4)})
	}
	for _, s := range straight {
		c, err := newGRPCClient(s.addr, o.grpcConns)
		if err != nil {
			return err
		}
		defer c.close()
		targets = append(targets, &target{name: s.name, procs: []string{s.proc}, call: c.do, baseline: strings.HasSuffix(s.name, "do-nothing")})
	}

	encode := func(t *target, token string) []byte {
		if t.http {
			return httpRequest(token)
		}
		return checkRequest(token)
	}
	// Ready: every target allows the good token (the processes start in parallel).
	deadline := time.Now().Add(90 * time.Second)
	for _, t := range targets {
		good := encode(t, prs[0].token)
		for t.call(0, good) != allowed {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s never allowed the good token; logs in %s:\n%s", t.name, dir, tails(dir))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if o.variants {
		if err := captureAllow(addr(0), checkRequest(prs[0].token), mimicAnswer); err != nil {
			return err
		}
	}
	profs, err := profilers(o, dir, procs, "http://"+addr(5))
	if err != nil {
		return err
	}
	for _, t := range targets {
		for _, p := range prs {
			want := p.want
			if t.baseline {
				want = allowed
			}
			t.probes = append(t.probes, probeResult{probe: p.name, want: want, got: t.call(0, encode(t, p.token))})
		}
		t.measured = len(failures(t.probes)) == 0 && o.only.MatchString(t.name)
		if f := failures(t.probes); len(f) > 0 {
			fmt.Printf("%s FAILS its probes, not measured: %s\n", t.name, strings.Join(f, "; "))
		}
	}

	// The requests, encoded once: the cached token, then the pool.
	var enc [2][][]byte // [http?1:0][i]
	cachedTok := prs[0].token
	for k, isHTTP := range []bool{false, true} {
		t := &target{http: isHTTP}
		enc[k] = append(enc[k], encode(t, cachedTok))
		for _, tok := range toks {
			enc[k] = append(enc[k], encode(t, tok))
		}
	}
	pids := map[string]int{"client (this harness)": os.Getpid()}
	for name, c := range procs {
		pids[name] = c.Process.Pid
	}
	var next atomic.Int64
	admin := "http://" + addr(2) + "/metrics"
	loadStart := loadAvg()
	measuredList := slices.DeleteFunc(slices.Clone(targets), func(t *target) bool { return !t.measured })
	// caller is one request of t in mode m: the cached token, or the pool's next.
	caller := func(t *target, m int) func(int) bool {
		reqs := enc[b2i(t.http)]
		if m == uncached {
			return func(w int) bool { return t.call(w, reqs[1+int(next.Add(1)%int64(len(reqs)-1))]) == allowed }
		}
		return func(w int) bool { return t.call(w, reqs[0]) == allowed }
	}
	for _, t := range measuredList { // warm-up
		reqs := enc[b2i(t.http)]
		load.Run(o.concurrency, 300*time.Millisecond, func(w int) bool { return t.call(w, reqs[0]) == allowed })
	}
	for r := 0; r < o.rounds; r++ {
		modes := []int{cached, uncached}
		order := slices.Clone(measuredList)
		if r%2 == 1 {
			slices.Reverse(modes)
			slices.Reverse(order)
		}
		for _, m := range modes {
			for _, t := range order {
				s := measure(pids, admin, t, o, caller(t, m))
				t.slices[m] = append(t.slices[m], s)
				fmt.Fprintf(os.Stderr, "  round %d %-8s %-45s %8.0f req/s p50 %-10s p99 %-10s errors %d\n", r+1, modeWords[m], t.name,
					s.res.RPS(), s.res.Pct(0.5).Round(time.Microsecond), s.res.Pct(0.99).Round(time.Microsecond), s.res.Errors)
				if s.res.Errors > 0 {
					return fmt.Errorf("%s answered %d errors or refusals to valid tokens in round %d; logs in %s:\n%s", t.name, s.res.Errors, r+1, dir, tails(dir))
				}
			}
		}
	}
	env := environment(o, loadStart, loadAvg())
	var ps []profiled
	profDir, kept := dir, ""
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
		profDir, kept = o.profileDir, "; the profiles are kept in `"+o.profileDir+"`"
	}
	if o.profile > 0 {
		for m := range 2 {
			for _, pt := range profiledTargets {
				t := find(targets, pt.target)
				if t == nil || !t.measured {
					continue
				}
				mode := modeWords[m]
				proc := t.procs[len(t.procs)-1]
				fmt.Fprintf(os.Stderr, "  profiling %-8s %-45s (%s)\n", mode, t.name, proc)
				p := profiled{profiledTarget: pt, proc: proc, mode: m}
				p.summary, p.err = profileSlice(profs[proc], o, caller(t, m), filepath.Join(profDir, pt.file+"-"+mode+".prof"))
				ps = append(ps, p)
			}
		}
	}
	report := render(env, o, targets, prs) + renderProfiles(ps, o.profile.String(), kept, 8)
	fmt.Print(report)
	if o.markdown != "" {
		doc, err := os.ReadFile(o.markdown)
		if err != nil {
			return err
		}
		out, err := replaceSection(string(doc), report)
		if err != nil {
			return fmt.Errorf("%s: %w", o.markdown, err)
		}
		return os.WriteFile(o.markdown, []byte(out), 0o644)
	}
	return nil
}

// shippedAllowedHeaders are the client headers envoy/envoy.yaml lets through to Portcullis:
// the token's header (envoy/portcullis.yaml's only token source).
var shippedAllowedHeaders = []string{"authorization"}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// measure runs one slice of t and reads every process's CPU and Portcullis's cache counters
// around it.
func measure(pids map[string]int, admin string, t *target, o options, call func(int) bool) slice {
	before := map[string]int64{}
	for name, pid := range pids {
		before[name], _ = procTicks(pid)
	}
	h0, m0 := cacheCounters(admin)
	res := load.Run(o.concurrency, o.slice, call)
	s := slice{res: res, cpuTicks: map[string]int64{}}
	for name, pid := range pids {
		after, _ := procTicks(pid)
		s.cpuTicks[name] = after - before[name]
	}
	h1, m1 := cacheCounters(admin)
	s.cacheHits, s.cacheMiss = h1-h0, m1-m0
	return s
}

// cacheCounters reads portcullis_token_cache_lookups_total's hit and miss counts.
func cacheCounters(url string) (hits, misses int64) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "portcullis_token_cache_lookups_total{") {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		switch {
		case strings.Contains(line, `result="hit"`):
			hits = int64(v)
		case strings.Contains(line, `result="miss"`):
			misses = int64(v)
		}
	}
	return hits, misses
}

// checkRequest is an Envoy-shaped CheckRequest for GET /api/orders/42 with token, encoded.
func checkRequest(token string) []byte {
	h := map[string]string{"user-agent": "bench-peers", "accept": "*/*", "x-request-id": "0b6e1c1a-5f0e-4d7c-9b3e-2f1a0c9d8e7f"}
	if token != "" {
		h["authorization"] = "Bearer " + token
	}
	b, err := proto.Marshal(&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: "api.example.com", Path: "/api/orders/42?expand=items", Headers: h}}}})
	if err != nil {
		panic(err)
	}
	return b
}

// httpRequest is the HTTP/1.1 request sent through Envoy: a browser-ish API call with a
// session cookie beside the token.
func httpRequest(token string) []byte {
	var b bytes.Buffer
	b.WriteString("GET /api/orders/42?expand=items HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) bench-peers\r\n" +
		"Accept: application/json\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-GB,en;q=0.9\r\n" +
		"Cookie: _ga=GA1.2.1234567890.1700000000; theme=dark; session_hint=4f9c2a7e1b3d\r\n")
	if token != "" {
		b.WriteString("Authorization: Bearer " + token + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// grpcClient sends pre-encoded CheckRequests over a few connections.
type grpcClient struct{ conns []*grpc.ClientConn }

func newGRPCClient(addr string, n int) (*grpcClient, error) {
	c := &grpcClient{}
	for range n {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		c.conns = append(c.conns, cc)
	}
	return c, nil
}

func (c *grpcClient) do(w int, req []byte) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return grpcOutcome(load.CheckRaw(ctx, c.conns[w%len(c.conns)], req))
}

func (c *grpcClient) close() {
	for _, cc := range c.conns {
		_ = cc.Close()
	}
}

// httpClient is a minimal HTTP/1.1 keep-alive client, one connection per caller: it writes a
// pre-encoded request and reads the status and a Content-Length body, which is all Envoy's
// direct responses and local replies need. Much lighter than net/http, so that the load
// generator takes less of the two cores from the processes measured.
type httpClient struct {
	addr  string
	conns []*httpConn
}

type httpConn struct {
	c net.Conn
	r *bufio.Reader
}

func newHTTPClient(addr string, n int) *httpClient {
	return &httpClient{addr: addr, conns: make([]*httpConn, n)}
}

func (c *httpClient) do(w int, req []byte) outcome {
	hc := c.conns[w]
	if hc == nil {
		nc, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return failed
		}
		hc = &httpConn{c: nc, r: bufio.NewReaderSize(nc, 16<<10)}
		c.conns[w] = hc
	}
	_ = hc.c.SetDeadline(time.Now().Add(5 * time.Second))
	status, keep, err := roundTrip(hc, req)
	if err != nil || !keep {
		_ = hc.c.Close()
		c.conns[w] = nil
	}
	return httpOutcome(status, err)
}

func (c *httpClient) close() {
	for _, hc := range c.conns {
		if hc != nil {
			_ = hc.c.Close()
		}
	}
}

// roundTrip writes req and reads one response: its status, and whether the connection stays open.
func roundTrip(hc *httpConn, req []byte) (status int, keep bool, err error) {
	if _, err := hc.c.Write(req); err != nil {
		return 0, false, err
	}
	return readResponse(hc.r)
}

func readResponse(r *bufio.Reader) (status int, keep bool, err error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	length, keep := -1, true
	for {
		h, err := r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		if len(bytes.TrimSpace(h)) == 0 {
			break
		}
		name, value, _ := bytes.Cut(h, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("content-length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, false, fmt.Errorf("bad content-length %q", value)
			}
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			return 0, false, errors.New("chunked answers are not read")
		case bytes.EqualFold(name, []byte("connection")) && bytes.EqualFold(value, []byte("close")):
			keep = false
		}
	}
	if length < 0 {
		return 0, false, errors.New("an answer without content-length")
	}
	if _, err := r.Discard(length); err != nil {
		return 0, false, err
	}
	return status, keep, nil
}

// freePorts reserves n loopback ports and releases them for the processes to take.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// tails is the end of every process log in dir, for an error message.
func tails(dir string) string {
	var b strings.Builder
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, p := range logs {
		data, _ := os.ReadFile(p)
		if len(data) > 1500 {
			data = data[len(data)-1500:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", filepath.Base(p), data)
	}
	return b.String()
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

// env is what the numbers were taken on.
type env struct {
	date, cpu, nproc, goVersion, envoy, opa, portcullis, loadStart, loadEnd string
}

func environment(o options, loadStart, loadEnd string) env {
	e := env{date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), nproc: strconv.Itoa(runtime.NumCPU()), goVersion: runtime.Version(),
		loadStart: loadStart, loadEnd: loadEnd}
	if out, err := exec.Command("lscpu").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(l, "Model name:"); ok {
				e.cpu = strings.TrimSpace(v)
			}
		}
	}
	e.envoy = firstLine(o.envoy, "--version")
	if i := strings.Index(e.envoy, "version: "); i >= 0 {
		e.envoy = e.envoy[i+len("version: "):]
	}
	if o.opa != "" {
		e.opa = firstLine(o.opa, "version")
	}
	e.portcullis = firstLine(o.portcullis, "version")
	return e
}

func firstLine(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "?"
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return "?"
}
