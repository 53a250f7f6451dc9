package authz

import (
	"context"
	"strings"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// ContextExtensionRule is the Envoy per-route context extension naming the rule to apply.
const ContextExtensionRule = "portcullis-rule"

// GRPCService is the Envoy ext_authz v3 Authorization service
// (envoy.service.auth.v3.Authorization/Check).
type GRPCService struct {
	authv3.UnimplementedAuthorizationServer
	authz *Authorizer
}

var _ authv3.AuthorizationServer = (*GRPCService)(nil)

// NewGRPCService serves Check with a.
func NewGRPCService(a *Authorizer) *GRPCService { return &GRPCService{authz: a} }

// Check answers every decision, 503 included, as a CheckResponse. It never returns an error: to
// Envoy an error is an outage, and with failure_mode_allow an outage lets the request through.
func (s *GRPCService) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	r := RequestFromCheck(req)
	d := s.authz.Authorize(ctx, FrontGRPC, &r)
	return CheckResponse(d), nil
}

// RequestFromCheck translates Envoy's attributes into a Request. Headers come from
// attributes.request.http.headers (lower-case keys), or from header_map when Envoy is set to
// send raw headers. The host is the :authority (the `host` field), falling back to the headers.
func RequestFromCheck(req *authv3.CheckRequest) Request {
	http := req.GetAttributes().GetRequest().GetHttp()
	r := Request{
		Method:  http.GetMethod(),
		Host:    http.GetHost(),
		Path:    http.GetPath(),
		Headers: http.GetHeaders(),
	}
	if len(r.Headers) == 0 {
		if hm := http.GetHeaderMap().GetHeaders(); len(hm) > 0 {
			r.Headers = make(map[string]string, len(hm))
			for _, h := range hm {
				k := strings.ToLower(h.GetKey())
				v := h.GetValue()
				if v == "" && len(h.GetRawValue()) > 0 {
					v = string(h.GetRawValue())
				}
				if prev, ok := r.Headers[k]; ok {
					v = prev + "," + v
				}
				r.Headers[k] = v
			}
		}
	}
	if r.Headers == nil {
		r.Headers = map[string]string{}
	}
	if r.Host == "" {
		r.Host = r.Headers[":authority"]
		if r.Host == "" {
			r.Host = r.Headers["host"]
		}
	}
	if r.Method == "" {
		r.Method = r.Headers[":method"]
	}
	if r.Path == "" {
		r.Path = r.Headers[":path"]
	}
	r.RuleName = req.GetAttributes().GetContextExtensions()[ContextExtensionRule]
	return r
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

// CheckResponse translates a Decision into Envoy's answer.
func CheckResponse(d *Decision) *authv3.CheckResponse {
	if !d.Allow {
		c, ok := rpcCodes[d.Status]
		if !ok {
			c = code.Code_PERMISSION_DENIED
		}
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(c), Message: string(d.Reason)},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.Status)},
				Headers: headerOptions(d.Set),
				Body:    string(d.Body),
			}},
		}
	}
	var wire *grpcAllow
	var md *structpb.Struct
	if d.from != nil {
		if wire = d.from.grpc.Load(); wire == nil {
			wire = newGRPCAllow(d)
			d.from.grpc.Store(wire)
		}
		md = wire.metadata(d.Rule)
	} else {
		wire = newGRPCAllow(d)
		md = wire.buildMetadata(d.Rule)
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code.Code_OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers:         wire.headers,
			HeadersToRemove: d.Remove,
		}},
		DynamicMetadata: md,
	}
}

// grpcAllow is what an allow answer takes from the identity alone: the header options and the
// metadata values. Built once per cached identity and shared read-only by every response
// served from it; protobuf messages may be marshalled concurrently.
type grpcAllow struct {
	headers            []*corev3.HeaderValueOption
	sub, issuer, roles *structpb.Value // nil for an anonymous allow
	// byRule holds the whole metadata struct per rule name (a handful per identity).
	byRule sync.Map
}

func newGRPCAllow(d *Decision) *grpcAllow {
	w := &grpcAllow{headers: headerOptions(d.Set)}
	if id := d.Identity; id != nil {
		w.sub = structpb.NewStringValue(id.Subject)
		w.issuer = structpb.NewStringValue(id.Issuer)
		w.roles = structpb.NewStringValue(d.roles)
	}
	return w
}

// headerOptions sets each header with OVERWRITE_IF_EXISTS_OR_ADD: the default action would add
// a second header beside a client-sent one.
func headerOptions(hs []Header) []*corev3.HeaderValueOption {
	if len(hs) == 0 {
		return nil
	}
	out := make([]*corev3.HeaderValueOption, len(hs))
	vals := make([]corev3.HeaderValue, len(hs))
	opts := make([]corev3.HeaderValueOption, len(hs))
	for i, h := range hs {
		vals[i] = corev3.HeaderValue{Key: h.Name, Value: h.Value}
		opts[i] = corev3.HeaderValueOption{Header: &vals[i], AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
		out[i] = &opts[i]
	}
	return out
}

// metadata is the dynamic metadata for Envoy's access logs:
// {"portcullis": {"sub", "issuer", "roles", "rule"}}; roles is the comma-separated list the
// x-user-roles header carries, so a log line shows it as one field.
func (w *grpcAllow) metadata(rule string) *structpb.Struct {
	if m, ok := w.byRule.Load(rule); ok {
		return m.(*structpb.Struct)
	}
	m := w.buildMetadata(rule)
	w.byRule.Store(rule, m)
	return m
}

func (w *grpcAllow) buildMetadata(rule string) *structpb.Struct {
	fields := make(map[string]*structpb.Value, 4)
	fields["rule"] = structpb.NewStringValue(rule)
	if w.sub != nil {
		fields["sub"], fields["issuer"], fields["roles"] = w.sub, w.issuer, w.roles
	}
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		"portcullis": structpb.NewStructValue(&structpb.Struct{Fields: fields}),
	}}
}
