package authz

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-authz/portcullis/reason"
)

// rawCodec sends its request bytes as they are and decodes the answer as a CheckResponse, so
// that a test can put a CheckRequest on the wire that no protobuf library would write.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(*authv3.CheckResponse))
}

// TestMalformedCheckRequestIsDenied: a CheckRequest the wire parser cannot read is answered as
// a decision (400 bad_request in a CheckResponse), never as a gRPC error, which Envoy would
// count as an outage and, with failure_mode_allow, let through.
func TestMalformedCheckRequestIsDenied(t *testing.T) {
	e, _ := benchEngine(t, 10)
	a := NewAuthorizer(e, NewMetrics(prometheus.NewRegistry()), nil)
	conn := startGRPC(t, a)
	// A public request that, read whole, would be allowed: what follows it makes it unreadable.
	base, err := proto.Marshal(envoyCheck(&authv3.AttributeContext_HttpRequest{Method: "GET", Host: "api.example.com", Path: "/healthz"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if d := e.Decide(context.Background(), &Request{Method: "GET", Host: "api.example.com", Path: "/healthz"}); !d.Allow {
		t.Fatalf("the base request is not allowed: %s", d.Reason)
	}
	for name, tail := range map[string][]byte{
		"truncated field":            {0x0a, 0x05, 0x22},
		"path not UTF-8 (merged in)": {0x0a, 0x08, 0x22, 0x06, 0x12, 0x04, 0x22, 0x02, 0xc0, 0xae},
		"wire type 7 (no such type)": {0x0f},
	} {
		body := append(append([]byte{}, base...), tail...)
		t.Run(name, func(t *testing.T) {
			got := new(authv3.CheckResponse)
			err := conn.Invoke(context.Background(), authv3.Authorization_Check_FullMethodName, body, got, grpc.ForceCodecV2(rawCodec{}))
			if err != nil {
				t.Fatalf("Check answered a gRPC error: %v", err)
			}
			d := e.deny(reason.BadRequest, nil)
			d.Detail = "unused by the wire answer"
			if want := CheckResponse(d); !proto.Equal(got, want) {
				t.Errorf("\n got %v\nwant %v", got, want)
			}
		})
	}
}
