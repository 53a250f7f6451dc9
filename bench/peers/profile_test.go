package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

// synthetic builds a CPU profile whose samples have the given stacks (leaf first; a frame
// "a|b" is one location where a was inlined into b; "f@file" is f in that source file) and CPU
// values.
func synthetic(samples []synthSample) *profile.Profile {
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10_000_000,
	}
	funcs := map[string]*profile.Function{}
	locs := map[string]*profile.Location{}
	for _, s := range samples {
		var stack []*profile.Location
		for _, frame := range s.stack {
			loc := locs[frame]
			if loc == nil {
				loc = &profile.Location{ID: uint64(len(p.Location) + 1), Address: uint64(0x1000 + len(p.Location))}
				for _, key := range strings.Split(frame, "|") {
					fn := funcs[key]
					if fn == nil {
						name, file, _ := strings.Cut(key, "@")
						fn = &profile.Function{ID: uint64(len(p.Function) + 1), Name: name, SystemName: name, Filename: file}
						funcs[key] = fn
						p.Function = append(p.Function, fn)
					}
					loc.Line = append(loc.Line, profile.Line{Function: fn, Line: 1})
				}
				locs[frame] = loc
				p.Location = append(p.Location, loc)
			}
			stack = append(stack, loc)
		}
		p.Sample = append(p.Sample, &profile.Sample{Location: stack, Value: []int64{s.cpu / 10_000_000, s.cpu}})
	}
	return p
}

type synthSample struct {
	cpu   int64 // ns
	stack []string
}

const (
	grpcServe = "google.golang.org/grpc.(*Server).processUnaryRPC"
	decide    = mod + "authz.(*Engine).Decide"
	topEval   = opa + "topdown.(*eval).evalCall"
	tokensGo  = "github.com/open-policy-agent/opa@v1.15.2/v1/topdown/tokens.go"
	jwtVerify = opa + "topdown.builtinJWTDecodeVerify@" + tokensGo
)

func TestSummarizeAttributesEachSampleToItsFirstBucketFromTheLeaf(t *testing.T) {
	const ms = 1_000_000
	p := synthetic([]synthSample{
		// allocation called by the claims reader is allocation, not claims
		{10 * ms, []string{"runtime.memclrNoHeapPointers", "runtime.mallocgc", mod + "token.scanPayload", decide, grpcServe}},
		// bigmod under crypto/rsa under rsakey: signature verification
		{30 * ms, []string{"filippo.io/bigmod.(*Nat).montgomeryMul", mod + "internal/rsakey.(*Key).Verify", mod + "token.(*issuer).verify", decide, grpcServe}},
		// bytes (no bucket) passes through to the claims reader
		{5 * ms, []string{"bytes.IndexByte", mod + "token.scanPayload", decide, grpcServe}},
		// protowire inlined into the wire parser: parsing; into the response encoder: rendering
		{4 * ms, []string{"google.golang.org/protobuf/encoding/protowire.ConsumeVarint|" + mod + "authz.nextField", mod + "authz.ParseCheckRequest", grpcServe}},
		{3 * ms, []string{"google.golang.org/protobuf/encoding/protowire.AppendVarint|" + mod + "authz.AppendCheckResponse", grpcServe}},
		// stack growth, scheduler, transport
		{7 * ms, []string{"runtime.memmove", "runtime.copystack", "runtime.newstack", "runtime.morestack", mod + "token.scanPayload"}},
		{6 * ms, []string{"runtime.futex", "runtime.notesleep", "runtime.stopm", "runtime.findRunnable", "runtime.schedule", "runtime.mcall"}},
		{8 * ms, []string{"internal/runtime/syscall.Syscall6", "syscall.write", "internal/poll.(*FD).Write", "google.golang.org/grpc/internal/transport.(*bufWriter).Flush"}},
		// the GC worker's own frames
		{9 * ms, []string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker.func2", "runtime.systemstack", "runtime.gcBgMarkWorker"}},
		// prometheus under the decision
		{2 * ms, []string{"sync/atomic.(*Uint64).Add", "github.com/prometheus/client_golang/prometheus.(*counter).Inc", decide}},
		// the token cache, its key's hash
		{3 * ms, []string{"github.com/maypok86/otter/v2.(*cache[go.shape.[32]uint8,go.shape.*uint8]).Get", mod + "authz.(*Engine).identify", decide}},
		{1 * ms, []string{"crypto/internal/fips140/sha256.blockAVX2", "crypto/sha256.Sum256", mod + "authz.tokenKey", mod + "authz.(*Engine).identify", decide}},
		// OPA: crypto under io.jwt; io.jwt's own code, and its JWKS decoding (jwx and
		// encoding/json, passed through to tokens.go); OPA's JSON conversion; evaluation
		{4 * ms, []string{"crypto/internal/fips140/bigmod.(*Nat).ExpShortVarTime", "crypto/rsa.VerifyPKCS1v15", jwtVerify, topEval}},
		{3 * ms, []string{jwtVerify, topEval}},
		{5 * ms, []string{"encoding/json.(*decodeState).object", "github.com/lestrrat-go/jwx/v3/jwk.Parse", opa + "topdown.getKeysFromCertOrJWK@" + tokensGo, jwtVerify, topEval}},
		{2 * ms, []string{"encoding/json.(*decodeState).object", opa + "util.UnmarshalJSON", opa + "topdown.builtinJSONUnmarshal@github.com/open-policy-agent/opa@v1.15.2/v1/topdown/encoding.go", topEval}},
		{1 * ms, []string{opa + "ast.(*object).Get", topEval}},
		// nothing known: other; no CPU: ignored
		{6 * ms, []string{"main.mystery"}},
		{0, []string{"runtime.mallocgc"}},
	})
	s, err := summarize(p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{
		"allocation, garbage collection":                                               (10 + 9) * ms,
		"cryptography: signatures, the cache key's SHA-256 (crypto/*, rsakey, bigmod)": (30 + 1 + 4) * ms,
		"token: JOSE, claims, key lookup (token, jwks)":                                5 * ms,
		"token cache (otter)":                                                          3 * ms,
		"CheckRequest parsing (Portcullis's wire parser; protobuf, protojson)":         4 * ms,
		"decision, rules, rendering (authz, rules, server)":                            3 * ms,
		"goroutine stacks (runtime.newstack, copystack)":                               7 * ms,
		"scheduler":                       6 * ms,
		"gRPC, HTTP/2, network, syscalls": 8 * ms,
		"metrics (prometheus)":            2 * ms,
		"OPA: io.jwt built-ins (topdown/tokens.go, its JWKS decoding included)":           (3 + 5) * ms,
		"OPA: JSON and AST values (ast/util conversion, the input from the CheckRequest)": 2 * ms,
		"OPA: Rego evaluation (topdown, rego, ast)":                                       1 * ms,
		otherBucket: 6 * ms,
	}
	for name, v := range want {
		if s.shares[name] != v {
			t.Errorf("%s: %d ms, want %d ms", name, s.shares[name]/ms, v/ms)
		}
	}
	for name, v := range s.shares {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected bucket %q: %d ms", name, v/ms)
		}
	}
	if s.total != 109*ms || s.samples != 18 {
		t.Errorf("total %d ms over %d samples, want 109 ms over 18 (the sample without CPU left out)", s.total/ms, s.samples)
	}
	// Flat: the innermost frame, inlined ones included.
	if f := s.flat[0]; f.name != "filippo.io/bigmod.(*Nat).montgomeryMul" || f.cpu != 30*ms {
		t.Errorf("top flat function %s %d ms, want bigmod's montgomeryMul 30 ms", f.name, f.cpu/ms)
	}
	if f := s.flat[1]; f.name != "runtime.memclrNoHeapPointers" || f.cpu != 10*ms {
		t.Errorf("second flat function %s %d ms, want memclrNoHeapPointers 10 ms", f.name, f.cpu/ms)
	}
	for _, f := range s.flat {
		if f.name == mod+"authz.nextField" {
			t.Error("a frame inlined into nextField was counted flat as nextField")
		}
	}
}

func TestReadProfileAndRender(t *testing.T) {
	const ms = 1_000_000
	p := synthetic([]synthSample{
		{30 * ms, []string{"crypto/internal/fips140/bigmod.addMulVVW2048", "crypto/rsa.VerifyPKCS1v15", mod + "token.(*issuer).verify"}},
		{10 * ms, []string{mod + "token.scanPayload", decide}},
	})
	path := filepath.Join(t.TempDir(), "cpu.prof")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Write(f); err != nil { // gzipped protobuf, as runtime/pprof writes it
		t.Fatal(err)
	}
	f.Close()
	s, err := readProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := renderProfiles([]profiled{
		{profiledTarget: profiledTargets[0], proc: "portcullis", mode: uncached, summary: s},
		{profiledTarget: profiledTargets[3], proc: "opa-envoy", mode: cached, err: os.ErrNotExist},
	}, "2s", "", 8)
	for _, want := range []string{
		"| bucket | Portcullis, straight, uncached |\n|---|---|\n",
		"| cryptography: signatures, the cache key's SHA-256 (crypto/*, rsakey, bigmod) | 75.0 % |\n",
		"| token: JOSE, claims, key lookup (token, jwks) | 25.0 % |\n",
		"| *CPU profiled (samples)* | 0.04 s (2) |",
		"- **gRPC straight → portcullis, uncached** (portcullis): `bigmod.addMulVVW2048` 75.0 %, `token.scanPayload` 25.0 %\n",
		"- gRPC straight → OPA-Envoy, cached: no profile: file does not exist\n",
		"over one extra 2s slice",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "scheduler") {
		t.Errorf("a bucket with no CPU in any profile has a row:\n%s", out)
	}
	if _, err := summarize(&profile.Profile{SampleType: []*profile.ValueType{{Type: "alloc_space", Unit: "bytes"}}}); err == nil {
		t.Error("a heap profile was summarized as a CPU profile")
	}
}

func TestShortName(t *testing.T) {
	for in, want := range map[string]string{
		mod + "token.(*issuer).identity":                      "token.(*issuer).identity",
		"runtime.mallocgc":                                    "runtime.mallocgc",
		"crypto/internal/fips140/bigmod.(*Nat).montgomeryMul": "bigmod.(*Nat).montgomeryMul",
		"slices.SortFunc[go.shape.[]github.com/x/y.T]":        "slices.SortFunc[go.shape.[]github.com/x/y.T]",
		"golang.org/x/net/http2.(*Framer).ReadFrame":          "http2.(*Framer).ReadFrame",
	} {
		if got := shortName(in); got != want {
			t.Errorf("shortName(%q) = %q, want %q", in, got, want)
		}
	}
}
