package authz

import (
	"context"
	"fmt"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// The gRPC front: envoy.service.auth.v3.Authorization/Check, served through the wire path of
// wire.go. Every decision, 503 included, is answered as a CheckResponse and never as a gRPC
// error: to Envoy an error is an outage, and with failure_mode_allow an outage lets the request
// through.

// ContextExtensionRule is the Envoy per-route context extension naming the rule to apply.
const ContextExtensionRule = "portcullis-rule"

// NewGRPCServer is a gRPC server answering envoy.service.auth.v3.Authorization/Check with a.
// Other services (health, reflection) may be registered on it; their messages go through the
// standard protobuf codec.
//
// Check reads its CheckRequest straight from the wire into a *WireRequest and answers a
// *Decision, which the server writes as the CheckResponse: these, not the generated Envoy
// messages, are the req and the response a grpc.UnaryServerInterceptor of Check sees, and
// the Payload of the stats.InPayload and stats.OutPayload a stats handler sees. A stats handler
// (otelgrpc.NewServerHandler, for one) needs neither: it works on the method name, the
// metadata and the payload sizes. To see each decision, give the Authorizer an Observer.
func NewGRPCServer(a *Authorizer, opts ...grpc.ServerOption) *grpc.Server {
	opts = append(opts, grpc.ForceServerCodecV2(wireCodec{fallback: encoding.GetCodecV2(grpcproto.Name)}))
	srv := grpc.NewServer(opts...)
	srv.RegisterService(&authorizationWire, a)
	return srv
}

// WireRequest is the request of Check as a unary interceptor sees it: the Request read from
// Envoy's CheckRequest (see ParseCheckRequest). An interceptor passes the same *WireRequest on,
// possibly changed; the handler answers a *Decision. An interceptor that passes anything else
// on gets a 400 bad_request deny, never an allow.
type WireRequest struct{ Request }

// authorizationWire is authv3.Authorization_ServiceDesc with Check decoding into a
// *WireRequest and answering a *Decision, which wireCodec encodes. The descriptor names stay
// Envoy's, so reflection and clients see the usual service.
var authorizationWire = grpc.ServiceDesc{
	ServiceName: authv3.Authorization_ServiceDesc.ServiceName,
	HandlerType: (*authorizer)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Check", Handler: checkHandler}},
	Streams:     []grpc.StreamDesc{},
	Metadata:    authv3.Authorization_ServiceDesc.Metadata,
}

// authorizer is what Check is served with: an *Authorizer.
type authorizer interface {
	Authorize(ctx context.Context, front string, r *Request) *Decision
}

var _ authorizer = (*Authorizer)(nil)

func checkHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(WireRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	a := srv.(authorizer)
	if interceptor == nil {
		return a.Authorize(ctx, FrontGRPC, &in.Request), nil
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		r, ok := req.(*WireRequest)
		if !ok || r == nil {
			r = &WireRequest{Request{Headers: map[string]string{},
				Invalid: fmt.Sprintf("a gRPC interceptor passed %T on to Check instead of the *authz.WireRequest it was given", req)}}
		}
		return a.Authorize(ctx, FrontGRPC, &r.Request), nil
	})
}

// wireCodec is the server's codec: a *WireRequest is parsed from the wire and a *Decision is
// written as a CheckResponse; every other message goes to the standard protobuf codec.
type wireCodec struct{ fallback encoding.CodecV2 }

func (wireCodec) Name() string { return grpcproto.Name }

func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	if d, ok := v.(*Decision); ok {
		return mem.BufferSlice{mem.SliceBuffer(AppendCheckResponse(nil, d))}, nil
	}
	return c.fallback.Marshal(v)
}

func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*WireRequest); ok {
		// The buffers are the transport's and are reused after this returns: ParseCheckRequest
		// copies the message once; a message in several buffers is copied by Materialize.
		var err error
		if len(data) == 1 {
			err = ParseCheckRequest(data[0].ReadOnlyData(), &r.Request)
		} else {
			err = parseOwned(data.Materialize(), &r.Request)
		}
		if err != nil {
			// Answered as a decision (400 bad_request), not as a gRPC error: Envoy would count an
			// error as an outage, and with failure_mode_allow let the request through.
			r.Request = Request{Invalid: err.Error()}
		}
		return nil
	}
	return c.fallback.Unmarshal(data, v)
}

// rpcCodes is the gRPC status code sent with each HTTP status (Envoy uses the HTTP status of
// denied_response for the answer; the code shows in its logs and stats).
var rpcCodes = map[int]code.Code{
	200: code.Code_OK,
	400: code.Code_INVALID_ARGUMENT,
	401: code.Code_UNAUTHENTICATED,
	403: code.Code_PERMISSION_DENIED,
	503: code.Code_UNAVAILABLE,
}

func rpcCode(status int) code.Code {
	if c, ok := rpcCodes[status]; ok {
		return c
	}
	return code.Code_PERMISSION_DENIED
}
