// Package load is the load generator shared by the benchmark commands (bench/loadbench,
// bench/peers): callers in a closed loop for a fixed time, their latencies and the percentiles
// of them, the do-nothing ext_authz v3 server, and a light gRPC client that sends pre-encoded
// CheckRequests and reads only whether the answer was an allow.
package load

import (
	"context"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Result is what one timed run of callers did.
type Result struct {
	Calls   int64
	Errors  int64 // calls that failed or were not the expected answer
	Elapsed time.Duration
	// CPU is the process's CPU time (user and system) during the calls, when the caller
	// measured it (loadbench, whose process holds the client and both servers).
	CPU       time.Duration
	Latencies []time.Duration
}

// CPUPerCall is CPU per call, rounded to the microsecond; 0 without calls.
func (r *Result) CPUPerCall() time.Duration {
	if r.Calls == 0 {
		return 0
	}
	return (r.CPU / time.Duration(r.Calls)).Round(time.Microsecond)
}

// Merge adds o's calls, errors, time and latencies to r.
func (r *Result) Merge(o *Result) {
	r.Calls += o.Calls
	r.Errors += o.Errors
	r.Elapsed += o.Elapsed
	r.CPU += o.CPU
	r.Latencies = append(r.Latencies, o.Latencies...)
}

// RPS is the calls per second.
func (r *Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Calls) / r.Elapsed.Seconds()
}

// Pct is the p-quantile (0 < p ≤ 1) of the latencies, nearest rank; 0 without latencies.
func (r *Result) Pct(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	slices.Sort(r.Latencies)
	i := int(math.Ceil(p*float64(len(r.Latencies)))) - 1
	return r.Latencies[max(i, 0)]
}

// Run runs concurrency callers for d, each calling call(w) in a loop (w is the caller's
// number), and records every latency. call reports whether the answer was the expected one.
func Run(concurrency int, d time.Duration, call func(w int) bool) Result {
	var wg sync.WaitGroup
	var calls, errs atomic.Int64
	lats := make([][]time.Duration, concurrency)
	deadline := time.Now().Add(d)
	start := time.Now()
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			for time.Now().Before(deadline) {
				t0 := time.Now()
				ok := call(w)
				local = append(local, time.Since(t0))
				calls.Add(1)
				if !ok {
					errs.Add(1)
				}
			}
			lats[w] = local
		}(w)
	}
	wg.Wait()
	r := Result{Calls: calls.Load(), Errors: errs.Load(), Elapsed: time.Since(start)}
	for _, l := range lats {
		r.Latencies = append(r.Latencies, l...)
	}
	return r
}

// Noop is the do-nothing ext_authz server: it allows everything with an empty OK response. It
// is a plain generated server, so it pays the full protobuf decode of every CheckRequest.
type Noop struct {
	authv3.UnimplementedAuthorizationServer
}

// Check allows.
func (Noop) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(code.Code_OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}, nil
}

// NewNoopServer is a gRPC server with only the do-nothing Authorization service.
func NewNoopServer() *grpc.Server {
	s := grpc.NewServer()
	authv3.RegisterAuthorizationServer(s, Noop{})
	return s
}

// Mimic is a do-nothing server whose allow is another server's: once the file Path holds a
// marshalled CheckResponse (bench/peers writes Portcullis's allow of its good token there), it
// answers every Check with that response, and with Noop's empty OK until then. Through Envoy it
// shows what applying such an answer (identity headers, headers to remove, dynamic metadata)
// costs Envoy, apart from what deciding costs the server.
type Mimic struct {
	authv3.UnimplementedAuthorizationServer
	Path   string
	answer atomic.Pointer[authv3.CheckResponse]
}

// Check answers the file's response, or an empty OK while there is none (or it does not parse).
func (m *Mimic) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	if a := m.answer.Load(); a != nil {
		return a, nil
	}
	if b, err := os.ReadFile(m.Path); err == nil {
		a := new(authv3.CheckResponse)
		if proto.Unmarshal(b, a) == nil && a.GetOkResponse() != nil {
			m.answer.Store(a)
			return a, nil
		}
	}
	return Noop{}.Check(ctx, req)
}

// NewMimicServer is a gRPC server with only m's Authorization service.
func NewMimicServer(m *Mimic) *grpc.Server {
	s := grpc.NewServer()
	authv3.RegisterAuthorizationServer(s, m)
	return s
}

// CheckMethod is the full name of ext_authz v3's Check.
const CheckMethod = "/envoy.service.auth.v3.Authorization/Check"

// Answer is what RawCodec reads of a CheckResponse: which of the two answers it carries.
type Answer struct {
	Allowed bool // ok_response (3) present
	Denied  bool // denied_response (2) present
}

// RawCodec passes pre-encoded requests ([]byte) through and scans answers (*Answer) for their
// top-level field numbers without decoding them.
type RawCodec struct{}

// Name is "proto": the server sees an ordinary protobuf call.
func (RawCodec) Name() string { return "proto" }

// Marshal returns the pre-encoded request.
func (RawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }

// Unmarshal records which answer data carries; a malformed answer is an error.
func (RawCodec) Unmarshal(data []byte, v any) error {
	a := v.(*Answer)
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return protowire.ParseError(n)
		}
		data = data[n:]
		switch num {
		case 2:
			a.Denied = true
		case 3:
			a.Allowed = true
		}
		m := protowire.ConsumeFieldValue(num, typ, data)
		if m < 0 {
			return protowire.ParseError(m)
		}
		data = data[m:]
	}
	return nil
}

// CheckRaw sends one pre-encoded CheckRequest over cc and returns what the answer carries.
func CheckRaw(ctx context.Context, cc grpc.ClientConnInterface, req []byte) (Answer, error) {
	var a Answer
	err := cc.Invoke(ctx, CheckMethod, req, &a, grpc.ForceCodec(RawCodec{}))
	return a, err
}
