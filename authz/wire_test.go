package authz

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-authz/portcullis/reason"
	"github.com/portcullis-authz/portcullis/token"
)

// envoyCheck is a CheckRequest shaped like Envoy's, with the fields Portcullis does not read
// filled in too.
func envoyCheck(http *authv3.AttributeContext_HttpRequest, ext map[string]string) *authv3.CheckRequest {
	peer := func(addr string, port uint32) *authv3.AttributeContext_Peer {
		return &authv3.AttributeContext_Peer{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}},
			Principal: "spiffe://cluster.local/ns/shop/sa/web",
			Labels:    map[string]string{"app": "web"},
		}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:            peer("10.0.0.7", 51234),
		Destination:       peer("10.0.0.9", 8080),
		Request:           &authv3.AttributeContext_Request{Time: timestamppb.Now(), Http: http},
		ContextExtensions: ext,
		MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"envoy.filters.http.jwt_authn": {Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(1)}}}},
		TlsSession: &authv3.AttributeContext_TLSSession{Sni: "api.example.com"},
	}}
}

func wireCases() map[string]*authv3.CheckRequest {
	withCert := envoyCheck(&authv3.AttributeContext_HttpRequest{Method: "GET", Host: "api.example.com:8443", Path: "/api/x", Scheme: "https",
		Headers: map[string]string{"authorization": "DPoP abc.def.ghi", "dpop": "p.q.r"}}, nil)
	withCert.Attributes.Source.Certificate = "-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A"
	return map[string]*authv3.CheckRequest{
		"empty":                       {},
		"peer certificate and scheme": withCert,
		"headers map": envoyCheck(&authv3.AttributeContext_HttpRequest{
			Id: "42", Method: "GET", Host: "api.example.com", Path: "/api/orders/7?x=1", Scheme: "https", Protocol: "HTTP/1.1", Size: 12,
			Headers: map[string]string{":authority": "api.example.com", ":method": "GET", ":path": "/api/orders/7?x=1", "authorization": "Bearer abc.def.ghi", "x-user-id": "spoofed", "cookie": "a=1; b=2"},
		}, map[string]string{"portcullis-rule": "docs", "other": "x"}),
		"raw header_map": envoyCheck(&authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/p", HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: ":authority", RawValue: []byte("h.example.com")}, {Key: "X-A", RawValue: []byte("1")}, {Key: "x-a", Value: "2"},
			{Key: "x-raw", RawValue: []byte{0xff, 0xfe}}, {Key: "x-empty"},
		}}}, nil),
		"pseudo-headers only": envoyCheck(&authv3.AttributeContext_HttpRequest{
			Headers: map[string]string{":authority": "h", ":method": "DELETE", ":path": "/x"}}, nil),
		"host header": envoyCheck(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", Headers: map[string]string{"host": "h:8080", "": "empty name"}}, nil),
		"long values": envoyCheck(&authv3.AttributeContext_HttpRequest{Method: "GET", Host: strings.Repeat("h", 300), Path: "/" + strings.Repeat("p", 20000),
			Headers: map[string]string{"authorization": "Bearer " + strings.Repeat("t", 5000)}}, nil),
	}
}

// TestParseCheckRequest: the wire parser reads what RequestFromCheck reads from the decoded
// message, for Envoy-shaped requests and for the merges protobuf performs on repeated fields.
func TestParseCheckRequest(t *testing.T) {
	for name, req := range wireCases() {
		t.Run(name, func(t *testing.T) {
			b, err := proto.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			assertParsesLikeProto(t, b)
		})
	}
	b, _ := proto.Marshal(wireCases()["peer certificate and scheme"])
	if r := assertParsesLikeProto(t, b); r.Scheme != "https" || r.ClientCert != "-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A" {
		t.Errorf("scheme %q, client certificate %q: attributes.request.http.scheme or attributes.source.certificate not read", r.Scheme, r.ClientCert)
	}
	// A message field sent twice is merged; a scalar sent twice keeps the last; a map key sent
	// twice keeps the last value; header_map entries accumulate.
	first, _ := proto.Marshal(envoyCheck(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/a", Headers: map[string]string{"a": "1", "b": "1"},
		HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "x", Value: "1"}}}}, map[string]string{"portcullis-rule": "one"}))
	second, _ := proto.Marshal(&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
		Host: "h2", Path: "/b", Headers: map[string]string{"b": "2"}, HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "x", Value: "2"}}}}},
		ContextExtensions: map[string]string{"portcullis-rule": "two"}}})
	merged := append(append([]byte{}, first...), second...)
	r := assertParsesLikeProto(t, merged)
	if r.Host != "h2" || r.Path != "/b" || r.Method != "GET" || r.Headers["a"] != "1" || r.Headers["b"] != "2" || r.RuleName != "two" {
		t.Errorf("merged request = %+v", r)
	}
}

func assertParsesLikeProto(t *testing.T, b []byte) Request {
	t.Helper()
	var m authv3.CheckRequest
	protoErr := proto.Unmarshal(b, &m)
	var got Request
	err := ParseCheckRequest(b, &got)
	switch {
	case protoErr != nil:
		return got // either way: protobuf rejects more, it checks the fields Portcullis skips
	case err != nil:
		t.Fatalf("ParseCheckRequest: %v; protobuf decodes it", err)
	}
	if want := RequestFromCheck(&m); !reflect.DeepEqual(got, want) {
		t.Fatalf("\n got %+v\nwant %+v", got, want)
	}
	return got
}

// FuzzParseCheckRequest: on any input protobuf decodes, the wire parser reads exactly what
// RequestFromCheck reads; it never fails on input protobuf accepts.
func FuzzParseCheckRequest(f *testing.F) {
	for _, req := range wireCases() {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		assertParsesLikeProto(t, b)
	})
}

func TestParseCheckRequestRejects(t *testing.T) {
	valid, _ := proto.Marshal(wireCases()["headers map"])
	notUTF8, _ := proto.Marshal(&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET"}}}})
	notUTF8 = append([]byte{}, notUTF8...)
	notUTF8[len(notUTF8)-1] = 0xff // the last byte of "GET"
	// http wraps the fields of an HttpRequest in a CheckRequest.
	http := func(fields []byte) []byte {
		return wireMsg(1, wireMsg(4, wireMsg(2, fields)))
	}
	for name, b := range map[string][]byte{
		"truncated":                   valid[:len(valid)-3],
		"bad tag":                     {0x80},
		"not utf-8":                   notUTF8,
		"bad length":                  {0x0a, 0x7f, 0x01},
		"headers key not utf-8":       http(wireMsg(3, wireMsg(1, []byte{0xff}))),
		"headers value not utf-8":     http(wireMsg(3, append(wireMsg(1, []byte("a")), wireMsg(2, []byte{0xc3})...))),
		"headers entry truncated":     http(wireMsg(3, []byte{0x0a, 0x05, 'a'})),
		"context extension truncated": wireMsg(1, wireMsg(10, []byte{0x12, 0x09})),
		"header_map key not utf-8":    http(wireMsg(13, wireMsg(1, wireMsg(1, []byte{0xfe})))),
		"header_map value not utf-8":  http(wireMsg(13, wireMsg(1, wireMsg(2, []byte{0xfe})))),
		"header_map entry truncated":  http(wireMsg(13, wireMsg(1, []byte{0x1a, 0x03, 'x'}))),
	} {
		var r Request
		if err := ParseCheckRequest(b, &r); !errors.Is(err, errWire) {
			t.Errorf("%s: err = %v", name, err)
		}
		if proto.Unmarshal(b, &authv3.CheckRequest{}) == nil {
			t.Errorf("%s: protobuf accepts it", name)
		}
	}
}

// wireMsg is a length-delimited field num holding b.
func wireMsg(num protowire.Number, b []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), b)
}

// TestWireCodecSplitBuffers: a CheckRequest the transport hands over in several buffers reads
// as one.
func TestWireCodecSplitBuffers(t *testing.T) {
	b, err := proto.Marshal(wireCases()["headers map"])
	if err != nil {
		t.Fatal(err)
	}
	var got WireRequest
	parts := mem.BufferSlice{mem.SliceBuffer(b[:len(b)/3]), mem.SliceBuffer(b[len(b)/3 : len(b)/2]), mem.SliceBuffer(b[len(b)/2:])}
	if err := (wireCodec{}).Unmarshal(parts, &got); err != nil {
		t.Fatal(err)
	}
	var m authv3.CheckRequest
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if want := RequestFromCheck(&m); !reflect.DeepEqual(got.Request, want) {
		t.Errorf("\n got %+v\nwant %+v", got.Request, want)
	}
}

// TestAppendCheckResponse: the bytes the server writes decode to the message CheckResponse
// builds, for every kind of answer.
func TestAppendCheckResponse(t *testing.T) {
	e, idp := benchEngine(t, 10)
	tok := keycloakLike(t, idp, "RS256")
	ctx := context.Background()
	decisions := map[string]*Decision{
		"cached allow":   e.Decide(ctx, benchRequest(tok)),
		"public":         e.Decide(ctx, &Request{Method: "GET", Host: "h", Path: "/healthz", Headers: map[string]string{}}),
		"public, token":  e.Decide(ctx, &Request{Method: "GET", Host: "h", Path: "/healthz", Headers: map[string]string{"authorization": "Bearer " + tok}}),
		"403":            e.Decide(ctx, &Request{Method: "GET", Host: "api.example.com", Path: "/api/admin/x", Headers: map[string]string{"authorization": "Bearer " + tok}}),
		"no rule":        e.Decide(ctx, &Request{Method: "GET", Host: "h", Path: "/elsewhere", Headers: map[string]string{}}),
		"empty identity": {Allow: true, Status: 200, Reason: reason.OK, Identity: &token.Identity{}},
		"long header": {Allow: true, Status: 200, Reason: reason.OK, Rule: strings.Repeat("r", 200),
			Upstream: []Header{{"x-user-roles", strings.Repeat("role,", 4000)}}, UpstreamRemove: []string{"x-user-email"}},
		"unknown status": {Status: 418, Reason: "teapot", Body: []byte("{}")},
	}
	for _, a := range reason.All() {
		if !a.Allow() {
			decisions["deny "+string(a.Code)] = e.deny(a.Code, []string{"orders:write"})
		}
	}
	e.forwardToken = false
	decisions["forward_token false"] = e.Decide(ctx, benchRequest(tok))
	for name, d := range decisions {
		t.Run(name, func(t *testing.T) {
			var got authv3.CheckResponse
			if err := proto.Unmarshal(AppendCheckResponse(nil, d), &got); err != nil {
				t.Fatal(err)
			}
			if want := CheckResponse(d); !proto.Equal(&got, want) {
				t.Errorf("\n got %v\nwant %v", &got, want)
			}
		})
	}
}

// startGRPC serves a with NewGRPCServer on a loopback port, with the health service beside it,
// and returns a client connection.
func startGRPC(t *testing.T, a *Authorizer, opts ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	srv := NewGRPCServer(a, opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestGRPCServer: over a real loopback connection, a standard generated client gets the
// answer CheckResponse describes; a unary interceptor sees the *WireRequest read from the
// CheckRequest and the *Decision answered; the other services keep the standard codec.
func TestGRPCServer(t *testing.T) {
	e, idp := benchEngine(t, 10)
	reg := prometheus.NewRegistry()
	a := NewAuthorizer(e, NewMetrics(reg), nil)
	var intercepted []string
	conn := startGRPC(t, a, grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		seen := fmt.Sprintf("%s %T %T", info.FullMethod, req, resp)
		if r, ok := req.(*WireRequest); ok {
			seen += " " + r.Method + " " + r.Path
		}
		if d, ok := resp.(*Decision); ok {
			seen += fmt.Sprint(" ", d.Status)
		}
		intercepted = append(intercepted, seen)
		return resp, err
	}))
	client := authv3.NewAuthorizationClient(conn)
	tok := keycloakLike(t, idp, "RS256")
	for _, c := range []struct {
		name string
		req  *authv3.CheckRequest
	}{
		{"allow", envoyCheck(&authv3.AttributeContext_HttpRequest{Method: "GET", Host: "api.example.com", Path: "/api/orders/7",
			Headers: map[string]string{"authorization": "Bearer " + tok, "x-user-id": "spoofed"}}, nil)},
		{"401", envoyCheck(&authv3.AttributeContext_HttpRequest{Method: "GET", Host: "api.example.com", Path: "/api/orders/7"}, nil)},
		{"403 by the named rule", envoyCheck(&authv3.AttributeContext_HttpRequest{Method: "GET", Host: "api.example.com", Path: "/api/orders/7",
			Headers: map[string]string{"authorization": "Bearer " + tok}}, map[string]string{ContextExtensionRule: "admin"})},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := client.Check(context.Background(), c.req)
			if err != nil {
				t.Fatal(err)
			}
			r := RequestFromCheck(c.req)
			if want := CheckResponse(e.Decide(context.Background(), &r)); !proto.Equal(got, want) {
				t.Errorf("\n got %v\nwant %v", got, want)
			}
		})
	}
	if n := testutil.ToFloat64(a.metrics.decisions.WithLabelValues(FrontGRPC, "deny", string(reason.Forbidden))); n != 1 {
		t.Errorf("grpc forbidden decisions = %v, want 1", n)
	}
	check := authv3.Authorization_Check_FullMethodName + " *authz.WireRequest *authz.Decision GET /api/orders/7 "
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health: %v %v", resp, err)
	}
	want := []string{check + "200", check + "401", check + "403",
		"/grpc.health.v1.Health/Check *grpc_health_v1.HealthCheckRequest *grpc_health_v1.HealthCheckResponse"}
	if !reflect.DeepEqual(intercepted, want) {
		t.Errorf("interceptor saw\n%s\nwant\n%s", strings.Join(intercepted, "\n"), strings.Join(want, "\n"))
	}
}

// TestGRPCInterceptors: an interceptor may change the *WireRequest it passes on; one that
// passes anything else on gets a 400 bad_request deny, never an allow nor a crash.
func TestGRPCInterceptors(t *testing.T) {
	e, idp := benchEngine(t, 10)
	tok := keycloakLike(t, idp, "RS256")
	req := envoyCheck(&authv3.AttributeContext_HttpRequest{Method: "GET", Host: "api.example.com", Path: "/api/orders/7",
		Headers: map[string]string{"authorization": "Bearer " + tok}}, nil)
	for _, c := range []struct {
		name    string
		pass    func(req any) any
		status  int32
		message string
	}{
		{"unchanged", func(req any) any { return req }, 0, ""},
		{"the rule changed", func(req any) any { req.(*WireRequest).RuleName = "admin"; return req }, 403, "forbidden"},
		{"the generated message", func(any) any { return &authv3.CheckRequest{} }, 400, "bad_request"},
		{"a nil *WireRequest", func(any) any { return (*WireRequest)(nil) }, 400, "bad_request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := startGRPC(t, NewAuthorizer(e, nil, nil), grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				return h(ctx, c.pass(req))
			}))
			got, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if s := got.GetDeniedResponse().GetStatus().GetCode(); int32(s) != c.status || got.GetStatus().GetMessage() != c.message {
				t.Errorf("answer %d %q, want %d %q", s, got.GetStatus().GetMessage(), c.status, c.message)
			}
			if c.status == 0 && got.GetOkResponse() == nil {
				t.Errorf("not an allow: %v", got)
			}
		})
	}
}

// TestParseCheckRequestCopiesTheMessage: the Request's strings share one copy of the message,
// not the caller's buffer, which the gRPC transport reuses once the codec returns.
func TestParseCheckRequestCopiesTheMessage(t *testing.T) {
	for name, req := range wireCases() {
		t.Run(name, func(t *testing.T) {
			b, err := proto.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			var got Request
			if err := ParseCheckRequest(b, &got); err != nil {
				t.Fatal(err)
			}
			for i := range b {
				b[i] = 'X'
			}
			if want := RequestFromCheck(req); !reflect.DeepEqual(got, want) {
				t.Fatalf("after the buffer was reused:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}
