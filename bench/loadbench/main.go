// Command loadbench measures Portcullis under loopback gRPC load side by side with a do-nothing
// ext_authz v3 server built from the same gRPC version, in alternating A/B rounds of one process
// run, and prints throughput, p50 and p99 for both and their ratio. Because the machine is shared
// and noisy, only the ratios of one run are meaningful. With -when the two sides are instead two
// Portcullis servers whose rule under test differs only by a tenant-isolation `when`.
//
//	go run ./bench/loadbench -rounds 6 -round 5s -concurrency 32 -cache 10000
//	go run ./bench/loadbench -rounds 6 -round 3s -when
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-authz/portcullis/bench/internal/load"
	"github.com/portcullis-authz/portcullis/internal/devidp"
	"github.com/portcullis-authz/portcullis/server"
)

const benchConfig = `
server: { grpc_addr: "127.0.0.1:0", http_addr: "", admin_addr: "" }
issuers:
  - issuer: https://sso.example.com/realms/bench
    jwks_file: keys.json
    audiences: [orders-api]
    algorithms: [%s]
cache: { tokens: %d }
rules:
  - name: health
    match: { paths: ["/healthz"], methods: [GET] }
    public: true
  - name: admin
    match: { paths: ["/api/admin/**"] }
    require: { any_roles: [admin] }
%s  - name: api
    match: { paths: ["/api/**"] }
    require: { any_roles: [user] }
`

// tenantRule is the rule under test of -when: %s is its require block. Both servers of that
// mode have it, one with tenantWhen in its require, one without.
const tenantRule = `  - name: tenant-orders
    match: { paths: ["/tenants/{tenant}/orders/**"] }
    require: %s
`

// tenantWhen is the tenant-isolation condition of issue 15.
const tenantWhen = `{ any_roles: [user], when: 'claims.tenant_id == params.tenant' }`

// configText is the Portcullis configuration with extra rules (before the API catch-all).
func configText(alg string, cache int, extra string) string {
	return fmt.Sprintf(benchConfig, alg, cache, extra)
}

// startPortcullis writes a configuration into dir under name and serves it on a loopback port
// until ctx ends, returning its gRPC address.
func startPortcullis(ctx context.Context, dir, name, cfg string) string {
	path := filepath.Join(dir, name)
	must(os.WriteFile(path, []byte(cfg), 0o600))
	srv, err := server.New(server.Options{ConfigPath: path})
	if err != nil {
		log.Fatal(err)
	}
	must(srv.Listen())
	go func() { _ = srv.Run(ctx) }()
	return srv.Addr("grpc").String()
}

// processCPU is the CPU time the process has used so far, user and system (0 where getrusage
// is missing).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writeProfile writes the named runtime profile (mutex, block, ...) to path.
func writeProfile(name, path string) {
	f, err := os.Create(path)
	if err != nil {
		log.Print(err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		log.Print(err)
	}
}

func main() {
	rounds := flag.Int("rounds", 6, "A/B round pairs")
	round := flag.Duration("round", 5*time.Second, "length of one round")
	concurrency := flag.Int("concurrency", 32, "concurrent callers")
	conns := flag.Int("conns", 4, "client connections")
	cache := flag.Int("cache", 10000, "Portcullis cache.tokens (0 = every request verifies the signature)")
	alg := flag.String("alg", "RS256", "token algorithm: RS256 or ES256")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (client and both servers) to this file")
	mutexprofile := flag.String("mutexprofile", "", "write a mutex contention profile of the A/B rounds (client and both servers; every contention event sampled) to this file")
	soak := flag.Duration("soak", 0, "instead of A/B rounds: load Portcullis alone for this long, printing throughput and memory every -every")
	every := flag.Duration("every", time.Minute, "report interval of -soak")
	tokens := flag.Int("tokens", 1, "distinct tokens cycled through by the callers in -soak (more than cache.tokens exercises eviction); A/B rounds send the first")
	when := flag.Bool("when", false, "instead of Portcullis against the do-nothing server: two Portcullis servers whose rule under test, tenant-orders (/tenants/{tenant}/orders/**, any_roles [user]), differs only by require.when 'claims.tenant_id == params.tenant'; the token has tenant_id acme, the request path is /tenants/acme/orders/42")
	decode := flag.Bool("decode", false, "decode every answer into a CheckResponse in the client (by default the client sends pre-encoded requests and only looks for ok_response in the answer's bytes, so the load generator's own protobuf work does not share the two cores with the server under test)")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		must(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}

	idp, err := devidp.New()
	if err != nil {
		log.Fatal(err)
	}
	idp.SetIssuer("https://sso.example.com/realms/bench")
	dir, err := os.MkdirTemp("", "loadbench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	must(os.WriteFile(filepath.Join(dir, "keys.json"), idp.JWKS(), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The two sides: targets[0] is A, whose ratio to B is printed.
	type target struct{ name, addr string }
	var targets []target
	path := "/api/orders/42?expand=items"
	claims := devidp.Claims{}
	if *when {
		targets = []target{
			{"when", startPortcullis(ctx, dir, "when.yaml", configText(*alg, *cache, fmt.Sprintf(tenantRule, tenantWhen)))},
			{"no-when", startPortcullis(ctx, dir, "no-when.yaml", configText(*alg, *cache, fmt.Sprintf(tenantRule, "{ any_roles: [user] }")))},
		}
		path, claims["tenant_id"] = "/tenants/acme/orders/42?expand=items", "acme"
	} else {
		nl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		ns := load.NewNoopServer()
		go func() { _ = ns.Serve(nl) }()
		defer ns.Stop()
		targets = []target{
			{"portcullis", startPortcullis(ctx, dir, "portcullis.yaml", configText(*alg, *cache, ""))},
			{"do-nothing", nl.Addr().String()},
		}
	}

	reqs := make([]*authv3.CheckRequest, *tokens)
	for i := range reqs {
		c := devidp.Claims{"sub": fmt.Sprintf("bench-user-%d", i), "aud": "orders-api", "typ": "Bearer",
			"preferred_username": "bench", "email": "bench@example.com", "realm_access": map[string]any{"roles": []string{"user"}}}
		for k, v := range claims {
			c[k] = v
		}
		tok, err := idp.Mint(jwa.SignatureAlgorithm(*alg), c, 24*time.Hour)
		if err != nil {
			log.Fatal(err)
		}
		reqs[i] = &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: "api.example.com", Path: path,
				Headers: map[string]string{"authorization": "Bearer " + tok, "user-agent": "loadbench", "accept": "*/*", "x-request-id": "0b6e1c1a"}},
		}}}
	}
	req := reqs[0]
	clients := make([][]checker, len(targets))
	for i, tg := range targets {
		for c := 0; c < *conns; c++ {
			cc, err := grpc.NewClient(tg.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				log.Fatal(err)
			}
			defer cc.Close()
			if *decode {
				clients[i] = append(clients[i], typedChecker{authv3.NewAuthorizationClient(cc)})
			} else {
				clients[i] = append(clients[i], rawChecker{cc})
			}
		}
		// Warm up: connections, the token cache, the JIT-free but allocation-hungry first calls.
		run(clients[i], req, *concurrency, time.Second)
	}
	for i, tg := range targets {
		if r := run(clients[i][:1], req, 1, 200*time.Millisecond); r.Errors > 0 {
			log.Fatalf("%s answered errors or denies during warm-up; is the token valid?", tg.name)
		}
	}
	if *when { // the condition is what decides: another tenant's path is refused
		other := proto.Clone(req).(*authv3.CheckRequest)
		other.Attributes.Request.Http.Path = "/tenants/globex/orders/42"
		if r := run(clients[0][:1], other, 1, 50*time.Millisecond); r.Errors != r.Calls {
			log.Fatal("the server with the when allowed another tenant's path")
		}
	}
	if *soak > 0 {
		runSoak(clients[0], reqs, *concurrency, *soak, *every)
		return
	}
	if *mutexprofile != "" {
		runtime.SetMutexProfileFraction(1)
		defer writeProfile("mutex", *mutexprofile)
	}
	totals := make([]load.Result, len(targets))
	fmt.Printf("loadbench: %s against %s, %d rounds of %s per target, concurrency %d over %d connections, %s token, cache.tokens %d, client decodes answers: %v, GOMAXPROCS %d\n",
		targets[0].name, targets[1].name, *rounds, *round, *concurrency, *conns, *alg, *cache, *decode, runtime.GOMAXPROCS(0))
	for r := 0; r < *rounds; r++ {
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			cpu0 := processCPU()
			res := run(clients[i], req, *concurrency, *round)
			res.CPU = processCPU() - cpu0
			fmt.Printf("  round %d %-11s %9.0f req/s  p50 %-9s p99 %-9s cpu/req %-9s errors %d\n", r+1, targets[i].name, res.RPS(), res.Pct(0.50), res.Pct(0.99), res.CPUPerCall(), res.Errors)
			totals[i].Merge(&res)
		}
	}
	a, b := &totals[0], &totals[1]
	fmt.Printf("\n%-11s %12s %10s %10s %10s\n", "target", "req/s", "p50", "p99", "cpu/req")
	for i := range targets {
		fmt.Printf("%-11s %12.0f %10s %10s %10s\n", targets[i].name, totals[i].RPS(), totals[i].Pct(0.5), totals[i].Pct(0.99), totals[i].CPUPerCall())
	}
	fmt.Printf("\ncpu/req is the whole process's CPU time (client, both servers, runtime) over the calls of the round; %s's less %s's is what %s adds per request: %s\n",
		targets[0].name, targets[1].name, targets[0].name, a.CPUPerCall()-b.CPUPerCall())
	fmt.Printf("\nratio %s/%s: throughput %.3f, p50 %.2fx, p99 %.2fx\n", targets[0].name, targets[1].name,
		a.RPS()/b.RPS(), float64(a.Pct(0.5))/float64(b.Pct(0.5)), float64(a.Pct(0.99))/float64(b.Pct(0.99)))
	if a.Errors+b.Errors > 0 {
		fmt.Printf("errors: %s %d, %s %d\n", targets[0].name, a.Errors, targets[1].name, b.Errors)
		pprof.StopCPUProfile()
		if *mutexprofile != "" {
			writeProfile("mutex", *mutexprofile)
		}
		os.Exit(1)
	}
}

// run runs concurrency callers for d over clients, each sending req. A deny counts as an
// error: the benchmark request is meant to be allowed.
func run(clients []checker, req *authv3.CheckRequest, concurrency int, d time.Duration) load.Result {
	return load.Run(concurrency, d, func(w int) bool {
		ok, err := clients[w%len(clients)].check(req)
		return err == nil && ok
	})
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// runSoak loads Portcullis alone, cycling through reqs, and prints throughput, the process's
// resident memory and the Go heap every interval, so a leak shows as a rising column.
func runSoak(clients []checker, reqs []*authv3.CheckRequest, concurrency int, d, every time.Duration) {
	fmt.Printf("soak: %s, %d distinct tokens, concurrency %d\n%8s %10s %10s %10s %8s\n", d, len(reqs), concurrency, "minute", "req/s", "rss MiB", "heap MiB", "errors")
	var next atomic.Int64
	var errs atomic.Int64
	for elapsed := time.Duration(0); elapsed < d; elapsed += every {
		var calls atomic.Int64
		var wg sync.WaitGroup
		deadline := time.Now().Add(every)
		for w := 0; w < concurrency; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				c := clients[w%len(clients)]
				for time.Now().Before(deadline) {
					r := reqs[int(next.Add(1))%len(reqs)]
					ok, err := c.check(r)
					calls.Add(1)
					if err != nil || !ok {
						errs.Add(1)
					}
				}
			}(w)
		}
		wg.Wait()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Printf("%8.1f %10.0f %10.1f %10.1f %8d\n", (elapsed + every).Minutes(), float64(calls.Load())/every.Seconds(),
			float64(rssBytes())/(1<<20), float64(ms.HeapInuse)/(1<<20), errs.Load())
	}
}

// rssBytes reads the process's resident set size from /proc (0 where there is none).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

// checker sends one Check and reports whether the answer was an allow.
type checker interface {
	check(*authv3.CheckRequest) (bool, error)
}

// typedChecker is the generated client: the request is marshalled and the answer decoded.
type typedChecker struct{ c authv3.AuthorizationClient }

func (t typedChecker) check(req *authv3.CheckRequest) (bool, error) {
	resp, err := t.c.Check(context.Background(), req)
	return err == nil && resp.GetOkResponse() != nil, err
}

// rawChecker sends each request encoded once (cached per request) and reads only the answer's
// top-level field numbers (load.RawCodec).
type rawChecker struct{ cc *grpc.ClientConn }

var encoded sync.Map // *authv3.CheckRequest -> []byte

func (r rawChecker) check(req *authv3.CheckRequest) (bool, error) {
	b, ok := encoded.Load(req)
	if !ok {
		wire, err := proto.Marshal(req)
		if err != nil {
			return false, err
		}
		b, _ = encoded.LoadOrStore(req, wire)
	}
	a, err := load.CheckRaw(context.Background(), r.cc, b.([]byte))
	return err == nil && a.Allowed, err
}
