package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// comparison is a ratio of two targets' throughput, taken per round and reported as the median.
type comparison struct{ a, b, what string }

var comparisons = []comparison{
	{"gRPC straight → portcullis", "gRPC straight → do-nothing", "Portcullis / do-nothing server, gRPC straight"},
	{"gRPC straight → portcullis", "gRPC straight → OPA-Envoy", "Portcullis / OPA-Envoy, gRPC straight"},
	{"envoy ext_authz gRPC → portcullis", "envoy ext_authz gRPC → do-nothing", "through Envoy: ext_authz → Portcullis / ext_authz → do-nothing"},
	{"envoy ext_authz gRPC → portcullis", "envoy jwt_authn + RBAC", "through Envoy: ext_authz → Portcullis / jwt_authn + RBAC"},
	{"envoy ext_authz HTTP → portcullis", "envoy ext_authz gRPC → portcullis", "through Envoy: ext_authz HTTP / gRPC, both → Portcullis"},
	{"envoy ext_authz gRPC → portcullis", "envoy, no auth", "through Envoy: ext_authz → Portcullis / no auth"},
	{"envoy jwt_authn + RBAC", "envoy, no auth", "through Envoy: jwt_authn + RBAC / no auth"},
	{"variant: Envoy's defaults (every header)", "envoy ext_authz gRPC → portcullis", "Envoy's ext_authz defaults / the shipped configuration, → Portcullis"},
	{"variant: shipped + encode_raw_headers", "envoy ext_authz gRPC → portcullis", "the shipped configuration + encode_raw_headers / the shipped one"},
	{"variant: shipped + no cluster stats", "envoy ext_authz gRPC → portcullis", "the shipped configuration + charge_cluster_response_stats: false / the shipped one"},
	{"variant: shipped + no dynamic metadata", "envoy ext_authz gRPC → portcullis", "the shipped configuration + enable_dynamic_metadata_ingestion: false / the shipped one"},
	{mimicTarget, "envoy ext_authz gRPC → do-nothing", "through Envoy: do-nothing answering Portcullis's allow / answering an empty OK (what applying the answer costs Envoy)"},
	{"envoy ext_authz gRPC → portcullis", mimicTarget, "through Envoy: ext_authz → Portcullis / → do-nothing answering Portcullis's allow (what deciding costs)"},
}

// perRound is a measure of each of a target's slices in one mode.
func perRound(t *target, mode int, f func(slice) float64) []float64 {
	var out []float64
	for _, s := range t.slices[mode] {
		out = append(out, f(s))
	}
	return out
}

func rps(s slice) float64 { return s.res.RPS() }

// cpuPerRequest is the CPU per request, in µs, of the processes doing t's work (Envoy and the
// authorization server, not the client) over a slice.
func (t *target) cpuPerRequest(s slice) float64 {
	var sum float64
	for _, p := range t.procs {
		sum += cpuPerRequest(s.cpuTicks[p], clockTicks, s.res.Calls)
	}
	return sum
}

func micros(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }

// render is the BENCHMARKS.md section: the machine, the settings, the probes, then for each mode
// a table of the targets and one of the ratios.
func render(e env, o options, targets []*target, prs []probe) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Against the peers, through a real Envoy (`make bench-peers`)\n\n")
	fmt.Fprintf(&b, "Taken %s on %s, `nproc` %s, %s; Envoy %s (`--concurrency 1`); %s; Portcullis %s. Load average %s at the start, %s at the end.\n\n",
		e.date, e.cpu, e.nproc, e.goVersion, e.envoy, orNone(e.opa, "OPA-Envoy not measured"), e.portcullis, e.loadStart, e.loadEnd)
	fmt.Fprintf(&b, "%d rounds; in each, every target is measured for %s with the same token (cached) and for %s with a distinct token per request (uncached, cycling through %d pre-minted RS256 tokens, more than the %d entries of each cache), targets and modes in alternating order. %d concurrent callers (through Envoy: one HTTP/1.1 keep-alive connection each; straight: over %d gRPC connections). Figures are medians over the rounds; ratios are medians of the per-round ratios.\n\n",
		o.rounds, o.slice, o.slice, o.pool, o.cache, o.concurrency, o.grpcConns)

	b.WriteString("**Probes** (before measuring; a target that fails one is not measured; the baselines allow everything by design):\n\n| target | " + strings.Join(probeNames(prs), " | ") + " | verdict |\n|---|" + strings.Repeat("---|", len(prs)+1) + "\n")
	for _, t := range targets {
		row := []string{t.name}
		for _, r := range t.probes {
			cell := r.got.String()
			if r.got != r.want {
				cell = "**" + cell + "**"
			}
			row = append(row, cell)
		}
		verdict := "verifies"
		switch {
		case len(failures(t.probes)) > 0:
			verdict = "**fails: not measured**"
		case t.baseline:
			verdict = "baseline"
		}
		fmt.Fprintf(&b, "| %s | %s |\n", strings.Join(row, " | "), verdict)
	}
	b.WriteString("\n")

	procs := procNames(targets)
	for m := range 2 {
		fmt.Fprintf(&b, "**%s**\n\n| target | req/s | p50 | p99 | CPU µs/request: %s |\n|---|---|---|---|%s\n", modeNames[m], strings.Join(procs, " / "), "---|")
		for _, t := range targets {
			if !t.measured {
				continue
			}
			p50 := perRound(t, m, func(s slice) float64 { return float64(s.res.Pct(0.5)) })
			p99 := perRound(t, m, func(s slice) float64 { return float64(s.res.Pct(0.99)) })
			var cpu []string
			for _, p := range procs {
				if !slices.Contains(t.procs, p) && p != "client (this harness)" {
					cpu = append(cpu, "–")
					continue
				}
				name := p
				c := median(perRound(t, m, func(s slice) float64 { return cpuPerRequest(s.cpuTicks[name], clockTicks, s.res.Calls) }))
				cpu = append(cpu, fmt.Sprintf("%.0f", c))
			}
			fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s |\n", t.name, median(perRound(t, m, rps)),
				micros(time.Duration(median(p50))), micros(time.Duration(median(p99))), strings.Join(cpu, " / "))
		}
		fmt.Fprintf(&b, "\n| %s, median of %d rounds | throughput ratio | per round | CPU per request ratio (the servers' and Envoy's, not the client's) |\n|---|---|---|---|\n", modeWords[m], o.rounds)
		for _, c := range comparisons {
			a, bt := find(targets, c.a), find(targets, c.b)
			if a == nil || bt == nil || !a.measured || !bt.measured {
				continue
			}
			rs := ratios(perRound(a, m, rps), perRound(bt, m, rps))
			var each []string
			for _, r := range rs {
				each = append(each, fmt.Sprintf("%.2f", r))
			}
			cpu := ratios(perRound(a, m, a.cpuPerRequest), perRound(bt, m, bt.cpuPerRequest))
			fmt.Fprintf(&b, "| %s | **%.2f** | %s | %.2f |\n", c.what, median(rs), strings.Join(each, " "), median(cpu))
		}
		if m == uncached {
			var hits, miss int64
			for _, t := range targets {
				if slices.Contains(t.procs, "portcullis") {
					for _, s := range t.slices[m] {
						hits, miss = hits+s.cacheHits, miss+s.cacheMiss
					}
				}
			}
			if hits+miss > 0 {
				fmt.Fprintf(&b, "\nPortcullis's token cache in the uncached slices: %d hits, %d misses (%.1f %% hits).\n", hits, miss, 100*float64(hits)/float64(hits+miss))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func orNone(s, none string) string {
	if s == "" {
		return none
	}
	return "OPA-Envoy " + strings.TrimPrefix(s, "Version: ")
}

func probeNames(prs []probe) []string {
	var out []string
	for _, p := range prs {
		out = append(out, p.name)
	}
	return out
}

// procNames are the processes whose CPU is reported, in a fixed order.
func procNames(targets []*target) []string {
	out := []string{}
	for _, p := range []string{"envoy", "portcullis", "do-nothing", "opa-envoy"} {
		for _, t := range targets {
			if slices.Contains(t.procs, p) {
				out = append(out, p)
				break
			}
		}
	}
	return append(out, "client (this harness)")
}

func find(targets []*target, name string) *target {
	for _, t := range targets {
		if t.name == name {
			return t
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
