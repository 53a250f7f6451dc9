package authz

import (
	"context"
	"strings"

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
// (envoy.service.auth.v3.Authorization/Check). Portcullis' own server serves it through the wire
// path of NewGRPCServer; registered on any other gRPC server with
// authv3.RegisterAuthorizationServer, Check gives the same answers from the generated messages.
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
	f := checkFields{
		method:  http.GetMethod(),
		host:    http.GetHost(),
		path:    http.GetPath(),
		headers: http.GetHeaders(),
		rule:    req.GetAttributes().GetContextExtensions()[ContextExtensionRule],
	}
	for _, h := range http.GetHeaderMap().GetHeaders() {
		v := h.GetValue()
		if v == "" && len(h.GetRawValue()) > 0 {
			v = string(h.GetRawValue())
		}
		f.headerMap = append(f.headerMap, rawHeader{key: h.GetKey(), value: v})
	}
	return f.request()
}

// request builds the Request: header_map is used only when the headers map is empty; its
// keys are lower-cased and repeated headers joined with commas.
func (f *checkFields) request() Request {
	r := Request{Method: f.method, Host: f.host, Path: f.path, Headers: f.headers, RuleName: f.rule}
	if len(r.Headers) == 0 && len(f.headerMap) > 0 {
		r.Headers = make(map[string]string, len(f.headerMap))
		for _, h := range f.headerMap {
			k, v := strings.ToLower(h.key), h.value
			if prev, ok := r.Headers[k]; ok {
				v = prev + "," + v
			}
			r.Headers[k] = v
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

func rpcCode(status int) code.Code {
	if c, ok := rpcCodes[status]; ok {
		return c
	}
	return code.Code_PERMISSION_DENIED
}

// CheckResponse translates a Decision into Envoy's answer. The server writes the same message
// with AppendCheckResponse, straight to the wire.
func CheckResponse(d *Decision) *authv3.CheckResponse {
	if !d.Allow {
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(rpcCode(d.Status)), Message: string(d.Reason)},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.Status)},
				Headers: headerOptions(d.Set),
				Body:    string(d.Body),
			}},
		}
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code.Code_OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers:         headerOptions(d.Set),
			HeadersToRemove: d.Remove,
		}},
		DynamicMetadata: metadata(d),
	}
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
func metadata(d *Decision) *structpb.Struct {
	fields := make(map[string]*structpb.Value, 4)
	fields["rule"] = structpb.NewStringValue(d.Rule)
	if id := d.Identity; id != nil {
		fields["sub"] = structpb.NewStringValue(id.Subject)
		fields["issuer"] = structpb.NewStringValue(id.Issuer)
		fields["roles"] = structpb.NewStringValue(d.roles)
	}
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		"portcullis": structpb.NewStructValue(&structpb.Struct{Fields: fields}),
	}}
}
