package authz

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// The gRPC front's wire path. A generic server decodes Envoy's whole CheckRequest (peers,
// addresses, every header, TLS details) into a tree of messages and encodes the answer by
// reflection; on a cached token that costs several times the decision itself. Portcullis'
// server instead reads only the fields a Request is made of, straight from the wire, and
// writes the CheckResponse bytes directly. Both are checked against the generated messages
// (RequestFromCheck and CheckResponse stay the reference translation): the wire tests compare
// them field by field, and FuzzParseCheckRequest compares them on arbitrary input.

// NewGRPCServer is a gRPC server answering envoy.service.auth.v3.Authorization/Check with a,
// through the wire path. Other services (health, reflection) may be registered on it; their
// messages go through the standard protobuf codec.
func NewGRPCServer(a *Authorizer, opts ...grpc.ServerOption) *grpc.Server {
	opts = append(opts, grpc.ForceServerCodecV2(wireCodec{fallback: encoding.GetCodecV2(grpcproto.Name)}))
	srv := grpc.NewServer(opts...)
	srv.RegisterService(&authorizationWire, NewGRPCService(a))
	return srv
}

// authorizationWire is authv3.Authorization_ServiceDesc with Check decoding into a wireRequest
// and answering a *Decision, which wireCodec encodes. The descriptor names stay Envoy's, so
// reflection and clients see the usual service.
var authorizationWire = grpc.ServiceDesc{
	ServiceName: authv3.Authorization_ServiceDesc.ServiceName,
	HandlerType: (*authv3.AuthorizationServer)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Check", Handler: checkWireHandler}},
	Streams:     []grpc.StreamDesc{},
	Metadata:    authv3.Authorization_ServiceDesc.Metadata,
}

func checkWireHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(wireRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	s := srv.(*GRPCService)
	if interceptor == nil {
		return s.authz.Authorize(ctx, FrontGRPC, &in.Request), nil
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return s.authz.Authorize(ctx, FrontGRPC, &req.(*wireRequest).Request), nil
	})
}

// wireRequest is what the Check handler decodes: the Request read from a CheckRequest.
type wireRequest struct{ Request }

// wireCodec is the server's codec: a wireRequest is parsed from the wire and a *Decision is
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
	if r, ok := v.(*wireRequest); ok {
		// The buffers are the transport's and are reused after this returns: the parser copies
		// every string it keeps.
		var b []byte
		if len(data) == 1 {
			b = data[0].ReadOnlyData()
		} else {
			b = data.Materialize()
		}
		return ParseCheckRequest(b, &r.Request)
	}
	return c.fallback.Unmarshal(data, v)
}

// Field numbers of the messages read and written here (envoy/service/auth/v3,
// envoy/config/core/v3, google/rpc/status.proto, google/protobuf/struct.proto).
const (
	checkRequestAttributes = 1 // CheckRequest.attributes

	attributesRequest           = 4  // AttributeContext.request
	attributesContextExtensions = 10 // AttributeContext.context_extensions (map<string, string>)

	requestHTTP = 2 // AttributeContext.Request.http

	httpMethod    = 2  // HttpRequest.method
	httpHeaders   = 3  // HttpRequest.headers (map<string, string>)
	httpPath      = 4  // HttpRequest.path
	httpHost      = 5  // HttpRequest.host
	httpHeaderMap = 13 // HttpRequest.header_map

	headerMapHeaders = 1 // HeaderMap.headers
	headerKey        = 1 // HeaderValue.key
	headerValue      = 2 // HeaderValue.value
	headerRawValue   = 3 // HeaderValue.raw_value

	mapKey, mapValue = 1, 2 // a map entry

	responseStatus          = 1 // CheckResponse.status
	responseDenied          = 2 // CheckResponse.denied_response
	responseOK              = 3 // CheckResponse.ok_response
	responseDynamicMetadata = 4 // CheckResponse.dynamic_metadata

	statusCode, statusMessage = 1, 2 // google.rpc.Status

	deniedStatus, deniedHeaders, deniedBody = 1, 2, 3 // DeniedHttpResponse
	httpStatusCode                          = 1       // envoy.type.v3.HttpStatus.code

	okHeaders, okHeadersToRemove = 2, 5 // OkHttpResponse

	optionHeader, optionAppendAction = 1, 3 // HeaderValueOption

	structFields             = 1    // google.protobuf.Struct.fields (map<string, Value>)
	valueString, valueStruct = 3, 5 // google.protobuf.Value
)

// overwrite is the append action of every header Portcullis sets.
const overwrite = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD

var errWire = errors.New("authz: malformed CheckRequest")

// ParseCheckRequest reads a serialized CheckRequest into r as RequestFromCheck would read the
// decoded message. Protobuf's rules hold: a repeated occurrence of a message field merges into
// it, the last occurrence of a scalar and of a map key wins, a field of an unexpected wire type
// is an unknown field, and strings must be UTF-8. Fields not read are checked for
// well-formedness and skipped.
func ParseCheckRequest(b []byte, r *Request) error {
	var f checkFields
	err := eachField(b, func(num protowire.Number, v []byte) error {
		if num == checkRequestAttributes {
			return f.attributes(v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	*r = f.request()
	return nil
}

// eachField calls fn with every length-delimited field of the message b, in order, and skips
// the others.
func eachField(b []byte, fn func(num protowire.Number, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errWire, protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("%w: field %d: %v", errWire, num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return fmt.Errorf("%w: field %d: %v", errWire, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, v); err != nil {
			return err
		}
	}
	return nil
}

// checkFields are the fields of a CheckRequest a Request is made from.
type checkFields struct {
	method, host, path, rule string
	headers                  map[string]string
	headerMap                []rawHeader
}

// rawHeader is one entry of HttpRequest.header_map: value, or raw_value when value is empty.
type rawHeader struct{ key, value string }

func (f *checkFields) attributes(b []byte) error {
	return eachField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case attributesRequest:
			return eachField(v, func(num protowire.Number, v []byte) error {
				if num == requestHTTP {
					return f.http(v)
				}
				return nil
			})
		case attributesContextExtensions:
			k, val, err := mapEntry(v)
			if err == nil && k == ContextExtensionRule {
				f.rule = val
			}
			return err
		}
		return nil
	})
}

func (f *checkFields) http(b []byte) error {
	return eachField(b, func(num protowire.Number, v []byte) (err error) {
		switch num {
		case httpMethod:
			f.method, err = utf8String(v)
		case httpPath:
			f.path, err = utf8String(v)
		case httpHost:
			f.host, err = utf8String(v)
		case httpHeaders:
			var k, val string
			if k, val, err = mapEntry(v); err == nil {
				if f.headers == nil {
					f.headers = make(map[string]string, 16)
				}
				f.headers[k] = val
			}
		case httpHeaderMap:
			err = eachField(v, func(num protowire.Number, v []byte) error {
				if num != headerMapHeaders {
					return nil
				}
				h, err := headerEntry(v)
				f.headerMap = append(f.headerMap, h)
				return err
			})
		}
		return err
	})
}

// mapEntry reads a map<string, string> entry; a missing key or value is "".
func mapEntry(b []byte) (k, v string, err error) {
	err = eachField(b, func(num protowire.Number, f []byte) (err error) {
		switch num {
		case mapKey:
			k, err = utf8String(f)
		case mapValue:
			v, err = utf8String(f)
		}
		return err
	})
	return k, v, err
}

func headerEntry(b []byte) (rawHeader, error) {
	var h rawHeader
	var raw []byte
	err := eachField(b, func(num protowire.Number, f []byte) (err error) {
		switch num {
		case headerKey:
			h.key, err = utf8String(f)
		case headerValue:
			h.value, err = utf8String(f)
		case headerRawValue:
			raw = f
		}
		return err
	})
	if h.value == "" && len(raw) > 0 {
		h.value = string(raw)
	}
	return h, err
}

func utf8String(b []byte) (string, error) {
	if !utf8.Valid(b) {
		return "", fmt.Errorf("%w: a string field is not UTF-8", errWire)
	}
	return string(b), nil
}

// AppendCheckResponse appends d, encoded as the CheckResponse that CheckResponse(d) builds, to b.
func AppendCheckResponse(b []byte, d *Decision) []byte {
	if b == nil {
		b = make([]byte, 0, responseSizeHint(d))
	}
	if !d.Allow {
		c := rpcCode(d.Status)
		b = appendMessage(b, responseStatus, func(b []byte) []byte {
			b = appendVarintField(b, statusCode, uint64(c))
			return appendStringField(b, statusMessage, string(d.Reason))
		})
		return appendMessage(b, responseDenied, func(b []byte) []byte {
			b = appendMessage(b, deniedStatus, func(b []byte) []byte {
				return appendVarintField(b, httpStatusCode, uint64(d.Status))
			})
			b = appendHeaderOptions(b, deniedHeaders, d.Set)
			return appendStringField(b, deniedBody, string(d.Body))
		})
	}
	b = appendMessage(b, responseStatus, func(b []byte) []byte { return b })
	b = appendMessage(b, responseOK, func(b []byte) []byte {
		b = appendHeaderOptions(b, okHeaders, d.Set)
		for _, h := range d.Remove {
			b = protowire.AppendTag(b, okHeadersToRemove, protowire.BytesType)
			b = protowire.AppendString(b, h)
		}
		return b
	})
	return appendMessage(b, responseDynamicMetadata, func(b []byte) []byte {
		return appendStructEntry(b, "portcullis", func(b []byte) []byte {
			b = appendStringEntry(b, "rule", d.Rule)
			if id := d.Identity; id != nil {
				b = appendStringEntry(b, "sub", id.Subject)
				b = appendStringEntry(b, "issuer", id.Issuer)
				b = appendStringEntry(b, "roles", d.roles)
			}
			return b
		})
	})
}

// responseSizeHint is enough room for d's answer in most cases, so it is built in one
// allocation.
func responseSizeHint(d *Decision) int {
	n := 64 + len(d.Body) + len(d.Rule) + len(d.roles)
	for _, h := range d.Set {
		n += 12 + len(h.Name) + len(h.Value)
	}
	for _, h := range d.Remove {
		n += 3 + len(h)
	}
	if id := d.Identity; id != nil {
		n += 48 + len(id.Subject) + len(id.Issuer)
	}
	return n
}

func appendHeaderOptions(b []byte, num protowire.Number, hs []Header) []byte {
	for _, h := range hs {
		b = appendMessage(b, num, func(b []byte) []byte {
			b = appendMessage(b, optionHeader, func(b []byte) []byte {
				b = appendStringField(b, headerKey, h.Name)
				return appendStringField(b, headerValue, h.Value)
			})
			return appendVarintField(b, optionAppendAction, uint64(overwrite))
		})
	}
	return b
}

// appendStructEntry appends a Struct.fields entry whose value is a struct with the fields
// written by fields.
func appendStructEntry(b []byte, key string, fields func([]byte) []byte) []byte {
	return appendMessage(b, structFields, func(b []byte) []byte {
		b = appendStringField(b, mapKey, key)
		return appendMessage(b, mapValue, func(b []byte) []byte {
			return appendMessage(b, valueStruct, fields)
		})
	})
}

// appendStringEntry appends a Struct.fields entry whose value is a string. A Value's kind is a
// oneof, so an empty string is still written.
func appendStringEntry(b []byte, key, value string) []byte {
	return appendMessage(b, structFields, func(b []byte) []byte {
		b = appendStringField(b, mapKey, key)
		return appendMessage(b, mapValue, func(b []byte) []byte {
			b = protowire.AppendTag(b, valueString, protowire.BytesType)
			return protowire.AppendString(b, value)
		})
	})
}

// appendMessage appends a length-delimited field whose content body writes. One byte is
// reserved for the length; a longer length moves the content up.
func appendMessage(b []byte, num protowire.Number, body func([]byte) []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	at := len(b)
	b = body(append(b, 0))
	n := len(b) - at - 1
	if n < 0x80 {
		b[at] = byte(n)
		return b
	}
	extra := protowire.SizeVarint(uint64(n)) - 1
	b = append(b, make([]byte, extra)...)
	copy(b[at+1+extra:], b[at+1:at+1+n])
	protowire.AppendVarint(b[:at], uint64(n))
	return b
}

// appendStringField appends a proto3 string field; "" is the default and is not written.
func appendStringField(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendVarintField appends a proto3 integer field; 0 is the default and is not written.
func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}
