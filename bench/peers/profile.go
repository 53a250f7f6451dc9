package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/pprof/profile"

	"github.com/portcullis-authz/portcullis/bench/internal/load"
	"github.com/portcullis-authz/portcullis/internal/benchprofile"
)

// A bucket is a part of a server's work, named by the functions that do it: a frame belongs to
// it when its function's full name starts with one of the prefixes, or its source file's path
// ends with one of the files.
type bucket struct {
	name     string
	prefixes []string
	files    []string
}

const (
	mod = "github.com/portcullis-authz/portcullis/"
	opa = "github.com/open-policy-agent/opa/v1/"
)

// buckets, in the order of the tables. A sample is attributed to the bucket of its first
// matching frame from the leaf up (inlined frames included, innermost first), so each sample
// counts once: a mallocgc called by the claims reader is allocation, the claims reader's own
// code is claims, and gRPC's code that calls the handler counts only where nothing under it
// matched. Frames of no bucket (bytes, strings, sort, protowire, encoding/json, jwx, ...) are
// passed through to their callers, so that a library's work counts for the code that called it
// (OPA's JWKS decoding for its io.jwt built-ins); a sample with no matching frame is "other".
var buckets = []bucket{
	{"gRPC, HTTP/2, network, syscalls", []string{"google.golang.org/grpc", "golang.org/x/net/", "net.", "net/", "internal/poll.", "syscall.", "internal/runtime/syscall", "runtime.netpoll"}, nil},
	{"CheckRequest parsing (Portcullis's wire parser; protobuf, protojson)", []string{
		mod + "authz.ParseCheckRequest", mod + "authz.parseOwned", mod + "authz.(*wireNode)", mod + "authz.(*checkField", mod + "authz.nextField",
		mod + "authz.mapEntry", mod + "authz.headerEntry", mod + "authz.stringPair", mod + "authz.utf8String", mod + "authz.sharedString",
		"google.golang.org/protobuf/internal/", "google.golang.org/protobuf/proto.", "google.golang.org/protobuf/encoding/protojson.", "github.com/envoyproxy/go-control-plane/"}, nil},
	{"cryptography: signatures, the cache key's SHA-256 (crypto/*, rsakey, bigmod)", []string{"crypto/", "vendor/golang.org/x/crypto/", "golang.org/x/crypto/", "filippo.io/", "math/big.", mod + "internal/rsakey."}, nil},
	{"token: JOSE, claims, key lookup (token, jwks)", []string{mod + "token.", mod + "jwks."}, nil},
	{"token cache (otter)", []string{"github.com/maypok86/otter/", mod + "authz.newTokenCache", mod + "authz.(*tokenCache)"}, nil},
	{"decision, rules, rendering (authz, rules, server)", []string{mod + "authz.", mod + "rules.", mod + "reason.", mod + "server."}, nil},
	{"metrics (prometheus)", []string{"github.com/prometheus/"}, nil},
	{"OPA: io.jwt built-ins (topdown/tokens.go, its JWKS decoding included)", nil, []string{"/topdown/tokens.go"}},
	{"OPA: JSON and AST values (ast/util conversion, the input from the CheckRequest)", []string{opa + "util.", opa + "ast.InterfaceToValue", opa + "ast.ValueToInterface", opa + "ast.JSON", "github.com/open-policy-agent/opa-envoy-plugin/envoyauth."}, nil},
	{"OPA: Rego evaluation (topdown, rego, ast)", []string{opa + "topdown.", opa + "rego.", opa + "ast.", opa + "storage", opa + "plugins", "github.com/open-policy-agent/opa-envoy-plugin/"}, nil},
	{"allocation, garbage collection", []string{"runtime.mallocgc", "runtime.newobject", "runtime.makeslice", "runtime.growslice", "runtime.makemap", "runtime.gc", "runtime.bgsweep", "runtime.bgscavenge",
		"runtime.markroot", "runtime.scanobject", "runtime.sweepone", "runtime.(*mheap)", "runtime.(*mcache)", "runtime.(*mcentral)", "runtime.(*gcWork)", "runtime.(*sweepLocked)", "runtime.wbBuf", "runtime.gcWriteBarrier"}, nil},
	{"goroutine stacks (runtime.newstack, copystack)", []string{"runtime.newstack", "runtime.copystack", "runtime.morestack", "runtime.shrinkstack", "runtime.stackalloc", "runtime.stackfree"}, nil},
	{"scheduler", []string{"runtime.schedule", "runtime.findRunnable", "runtime.park_m", "runtime.gopark", "runtime.goready", "runtime.ready", "runtime.wakep", "runtime.startm", "runtime.stopm",
		"runtime.mcall", "runtime.goexit0", "runtime.newproc", "runtime.notesleep", "runtime.notewakeup", "runtime.runqgrab", "runtime.stealWork", "runtime.mPark", "runtime.handoffp",
		"runtime.sysmon", "runtime.resetspinning", "runtime.goschedImpl", "runtime.gosched_m", "runtime.execute", "runtime.injectglist"}, nil},
}

const otherBucket = "other"

// bucketOf is the bucket of a function, "" for none.
func bucketOf(fn *profile.Function) string {
	for _, b := range buckets {
		for _, p := range b.prefixes {
			if strings.HasPrefix(fn.Name, p) {
				return b.name
			}
		}
		for _, f := range b.files {
			if strings.HasSuffix(fn.Filename, f) {
				return b.name
			}
		}
	}
	return ""
}

// profileSummary is what the report shows of one CPU profile.
type profileSummary struct {
	total   int64            // CPU, in the profile's unit (nanoseconds)
	samples int              // samples with CPU
	shares  map[string]int64 // CPU per bucket name, otherBucket included
	flat    []funcShare      // functions by their own (flat) CPU, most first
}

type funcShare struct {
	name string
	cpu  int64
}

// summarize attributes each sample of a CPU profile to a bucket and sums the flat CPU of each
// function (the innermost frame of the sample).
func summarize(p *profile.Profile) (profileSummary, error) {
	vi := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			vi = i
		}
	}
	if vi < 0 {
		return profileSummary{}, fmt.Errorf("not a CPU profile: sample types %v", p.SampleType)
	}
	s := profileSummary{shares: map[string]int64{}}
	flat := map[string]int64{}
	for _, smp := range p.Sample {
		v := smp.Value[vi]
		if v == 0 {
			continue
		}
		s.total += v
		s.samples++
		b, leaf := otherBucket, ""
	walk:
		for _, loc := range smp.Location {
			for _, ln := range loc.Line { // innermost first
				if ln.Function == nil {
					continue
				}
				if leaf == "" {
					leaf = ln.Function.Name
				}
				if name := bucketOf(ln.Function); name != "" {
					b = name
					break walk
				}
			}
		}
		s.shares[b] += v
		if leaf == "" {
			leaf = "(unknown)"
		}
		flat[leaf] += v
	}
	for name, v := range flat {
		s.flat = append(s.flat, funcShare{name, v})
	}
	slices.SortFunc(s.flat, func(a, b funcShare) int { return cmp.Or(cmp.Compare(b.cpu, a.cpu), strings.Compare(a.name, b.name)) })
	return s, nil
}

// readProfile parses and summarizes the profile at path.
func readProfile(path string) (profileSummary, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return profileSummary{}, err
	}
	p, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		return profileSummary{}, fmt.Errorf("%s: %w", path, err)
	}
	return summarize(p)
}

// share is part of the total as a percentage.
func (s profileSummary) share(v int64) float64 {
	if s.total == 0 {
		return 0
	}
	return 100 * float64(v) / float64(s.total)
}

// shortName drops a function name's import path but for its last element:
// "github.com/portcullis-authz/portcullis/token.(*issuer).identity" is "token.(*issuer).identity".
// Type arguments ("[...]", which may hold import paths) are not searched for the path's end.
func shortName(fn string) string {
	head, _, _ := strings.Cut(fn, "[")
	return fn[strings.LastIndexByte(head, '/')+1:]
}

// profiled is one profiled slice: a target, a mode and the process profiled.
type profiled struct {
	profiledTarget
	proc    string
	mode    int
	summary profileSummary
	err     error
}

// renderProfiles is the report's profile section: how the profiles were taken, a table of the
// buckets' shares (a column per profile), and each profile's top functions by flat share.
func renderProfiles(ps []profiled, seconds, kept string, topN int) string {
	if len(ps) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**Where the CPU goes** (one CPU profile per target and mode, of the server process, over one extra %s slice after the measured rounds, so that profiling does not touch the figures above; Portcullis is `bin/portcullis-bench`, built with `-tags benchprofile`%s). Each sample counts once, in the bucket of its first frame from the leaf up that names one (inlined frames included): allocation called from the claims reader is allocation, and gRPC's frames count only for what nothing under them claimed. Shares of the process's profiled CPU:\n\n", seconds, kept)
	var cols []profiled
	for _, p := range ps {
		if p.err != nil {
			fmt.Fprintf(&b, "- %s, %s: no profile: %v\n", p.target, modeWords[p.mode], p.err)
			continue
		}
		cols = append(cols, p)
	}
	if len(cols) < len(ps) {
		b.WriteString("\n")
	}
	if len(cols) == 0 {
		return b.String()
	}
	b.WriteString("| bucket |")
	for _, c := range cols {
		fmt.Fprintf(&b, " %s, %s |", c.label, modeWords[c.mode])
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(cols)) + "\n")
	names := []string{}
	for _, bk := range buckets {
		names = append(names, bk.name)
	}
	for _, name := range append(names, otherBucket) {
		used := false
		for _, c := range cols {
			used = used || c.summary.shares[name] > 0
		}
		if !used {
			continue
		}
		fmt.Fprintf(&b, "| %s |", name)
		for _, c := range cols {
			if v := c.summary.shares[name]; v > 0 {
				fmt.Fprintf(&b, " %.1f %% |", c.summary.share(v))
			} else {
				b.WriteString(" – |")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("| *CPU profiled (samples)* |")
	for _, c := range cols {
		fmt.Fprintf(&b, " %.2f s (%d) |", float64(c.summary.total)/1e9, c.summary.samples)
	}
	fmt.Fprintf(&b, "\n\nTop %d functions by flat share (their own code, callees not included):\n\n", topN)
	for _, c := range cols {
		var fs []string
		for _, f := range c.summary.flat[:min(topN, len(c.summary.flat))] {
			fs = append(fs, fmt.Sprintf("`%s` %.1f %%", shortName(f.name), c.summary.share(f.cpu)))
		}
		fmt.Fprintf(&b, "- **%s, %s** (%s): %s\n", c.target, modeWords[c.mode], c.proc, strings.Join(fs, ", "))
	}
	b.WriteString("\n")
	return b.String()
}

// A profiledTarget is a target profiled after the measured rounds; the process profiled is its
// authorization server (the last of its procs). Label heads its column, file names its
// profiles in -profile-dir.
type profiledTarget struct{ target, label, file string }

var profiledTargets = []profiledTarget{
	{"gRPC straight → portcullis", "Portcullis, straight", "portcullis-straight"},
	{"envoy ext_authz gRPC → portcullis", "Portcullis, via Envoy", "portcullis-envoy"},
	{"gRPC straight → do-nothing", "do-nothing, straight", "do-nothing-straight"},
	{"gRPC straight → OPA-Envoy", "OPA-Envoy, straight", "opa-envoy-straight"},
}

// A profiler takes a CPU profile of one process between start and stop, and stop returns the
// profile's path.
type profiler interface {
	start() error
	stop() (string, error)
}

// profilePath is where a process started with benchprofile.Env writes its profile.
func profilePath(dir, proc string) string { return filepath.Join(dir, proc+".prof") }

// profilers are the profilers of the processes that can be profiled: Portcullis and the
// do-nothing server through benchprofile's signal (once their log shows they handle it),
// OPA-Envoy through the net/http/pprof handlers that its --pprof serves on --addr. A process
// that cannot be is an error: the run would otherwise end without the profiles it promised.
func profilers(o options, dir string, procs map[string]*exec.Cmd, opaURL string) (map[string]profiler, error) {
	out := map[string]profiler{}
	if o.profile <= 0 {
		return out, nil
	}
	for _, name := range []string{"portcullis", "do-nothing"} {
		logged, _ := os.ReadFile(filepath.Join(dir, name+".log"))
		if !bytes.Contains(logged, []byte(benchprofile.Ready)) {
			return nil, fmt.Errorf("%s cannot be profiled (its log has no %q): build Portcullis with -tags benchprofile, as make bench-peers does, or pass -profile 0", name, benchprofile.Ready)
		}
		out[name] = signalProfiler{pid: procs[name].Process.Pid, path: profilePath(dir, name)}
	}
	if o.opa != "" {
		resp, err := http.Get(opaURL + "/debug/pprof/")
		if err != nil {
			return nil, fmt.Errorf("opa-envoy's pprof: %w", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("opa-envoy serves no /debug/pprof/ on --addr (%s); pass -profile 0", resp.Status)
		}
		out["opa-envoy"] = &httpProfiler{url: opaURL, seconds: int(o.profile / time.Second), dest: filepath.Join(dir, "opa-envoy.prof")}
	}
	return out, nil
}

// signalProfiler toggles a process's benchprofile listener.
type signalProfiler struct {
	pid  int
	path string
}

func (s signalProfiler) start() error {
	if err := syscall.Kill(s.pid, syscall.SIGUSR1); err != nil {
		return err
	}
	return waitForFile(s.path + ".partial")
}

func (s signalProfiler) stop() (string, error) {
	if err := syscall.Kill(s.pid, syscall.SIGUSR1); err != nil {
		return "", err
	}
	return s.path, waitForFile(s.path)
}

// waitForFile waits up to 10 s for path to exist.
func waitForFile(path string) error {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%s did not appear", filepath.Base(path))
}

// httpProfiler asks net/http/pprof's /debug/pprof/profile for a profile of its seconds.
type httpProfiler struct {
	url     string
	seconds int
	dest    string
	done    chan error
}

func (h *httpProfiler) start() error {
	h.done = make(chan error, 1)
	go func() { h.done <- h.fetch() }()
	return nil
}

func (h *httpProfiler) fetch() error {
	c := &http.Client{Timeout: time.Duration(h.seconds)*time.Second + 30*time.Second}
	resp, err := c.Get(h.url + "/debug/pprof/profile?seconds=" + strconv.Itoa(h.seconds))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/debug/pprof/profile: %s: %.200s", resp.Status, body)
	}
	return os.WriteFile(h.dest, body, 0o600)
}

func (h *httpProfiler) stop() (string, error) { return h.dest, <-h.done }

// profileSlice runs one slice of call under pr's profile and summarizes the profile, kept at
// dest.
func profileSlice(pr profiler, o options, call func(int) bool, dest string) (profileSummary, error) {
	if pr == nil {
		return profileSummary{}, errors.New("the process cannot be profiled")
	}
	if err := pr.start(); err != nil {
		return profileSummary{}, err
	}
	res := load.Run(o.concurrency, o.profile, call)
	path, err := pr.stop()
	if err != nil {
		return profileSummary{}, err
	}
	if err := os.Rename(path, dest); err != nil {
		return profileSummary{}, err
	}
	if res.Errors > 0 {
		return profileSummary{}, fmt.Errorf("%d errors or refusals to valid tokens in the profiled slice", res.Errors)
	}
	return readProfile(dest)
}
