package authz

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protowire"
)

// The wire format of the gRPC front. A generic server decodes Envoy's whole CheckRequest
// (peers, addresses, every header, TLS details) into a tree of messages and encodes the answer
// by reflection; on a cached token that costs several times the decision itself. Portcullis
// reads only the fields of checkFieldTable, straight from the wire, and writes the
// CheckResponse bytes directly. The tests hold the reference translation on the generated
// messages, which reads the same table by field name: the wire tests compare the two field by
// field, and FuzzParseCheckRequest compares them on arbitrary input.

// checkFieldTable is every CheckRequest field a Request is read from. To read one more field,
// add its entry here (and, for a new part of the Request, its requestPart): ParseCheckRequest
// follows the numbers, the reference translation in the tests the names, and the tests check
// that both agree with Envoy's descriptor. Each entry fills its own part of checkFields, so the
// order of the fields on the wire does not matter between entries.
var checkFieldTable = [...]checkField{
	{"attributes.request.http.method", wirePath{1, 4, 2, 2}, kindString, partMethod},
	{"attributes.request.http.host", wirePath{1, 4, 2, 5}, kindString, partHost},
	{"attributes.request.http.path", wirePath{1, 4, 2, 4}, kindString, partPath},
	{"attributes.request.http.headers", wirePath{1, 4, 2, 3}, kindStringMap, partHeaders},
	{"attributes.request.http.header_map.headers", wirePath{1, 4, 2, 13, 1}, kindHeaderValues, partHeaderMap},
	{"attributes.context_extensions", wirePath{1, 10}, kindStringMap, partContext},
	{"attributes.source.address.socket_address.address", wirePath{1, 1, 1, 1, 2}, kindString, partSource},
	{"attributes.request.http.scheme", wirePath{1, 4, 2, 6}, kindString, partScheme},
	{"attributes.source.certificate", wirePath{1, 1, 5}, kindString, partCert},
}

// checkField is one entry of checkFieldTable.
type checkField struct {
	// path names the field from CheckRequest down, as in Envoy's .proto files
	// (envoy/service/auth/v3/{external_auth,attribute_context}.proto, envoy/config/core/v3/base.proto).
	path string
	// nums is the same path by field number.
	nums wirePath
	kind fieldKind
	// to is the part of checkFields the field fills.
	to requestPart
}

// wirePath is a field's path by field number, from CheckRequest down.
type wirePath []protowire.Number

// fieldKind says how a field of checkFieldTable is read. Every kind is length-delimited on the
// wire; the last occurrence of a string and of a map key wins, repeated entries accumulate.
type fieldKind uint8

const (
	kindString       fieldKind = iota // a string: set(to, "", value)
	kindStringMap                     // a map<string, string>: set(to, key, value) for every entry
	kindHeaderValues                  // repeated config.core.v3.HeaderValue: set(to, key, value, or raw_value when value is empty)
)

// requestPart is a part of checkFields an entry of checkFieldTable fills. (A switch rather
// than a func per entry: a call through a func value would move checkFields to the heap, one
// more allocation per request.)
type requestPart uint8

const (
	partMethod    requestPart = iota // Request.Method
	partHost                         // Request.Host
	partPath                         // Request.Path
	partHeaders                      // an entry of Request.Headers
	partHeaderMap                    // an entry of checkFields.headerMap
	partContext                      // an entry of Request.Context (and Request.RuleName for portcullis-rule)
	partSource                       // Request.SourceAddress
	partScheme                       // Request.Scheme
	partCert                         // Request.ClientCert
)

// checkFields is what checkFieldTable fills: the Request, and the header_map entries, which
// request uses only when the headers map is empty.
type checkFields struct {
	Request
	headerMap []rawHeader
}

// rawHeader is one entry of HttpRequest.header_map.
type rawHeader struct{ key, value string }

// set stores what a field held: a string, or the key and value of a map entry or a header.
func (f *checkFields) set(to requestPart, k, v string) {
	switch to {
	case partMethod:
		f.Method = v
	case partHost:
		f.Host = v
	case partPath:
		f.Path = v
	case partContext:
		if f.Context == nil {
			f.Context = make(map[string]string, 2)
		}
		f.Context[k] = v
		if k == ContextExtensionRule {
			f.RuleName = v
		}
	case partSource:
		f.SourceAddress = v
	case partScheme:
		f.Scheme = v
	case partCert:
		f.ClientCert = v
	case partHeaders:
		if f.Headers == nil {
			f.Headers = make(map[string]string, 16)
		}
		f.Headers[k] = v
	case partHeaderMap:
		f.headerMap = append(f.headerMap, rawHeader{k, v})
	}
}

// request builds the Request: header_map is used only when the headers map is empty; its
// keys are lower-cased and repeated headers joined with commas. The host is the :authority
// (the `host` field), falling back to the headers, and so are the method and the path.
func (f *checkFields) request() Request {
	r := f.Request
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

// checkRequestReader is checkFieldTable as the tree ParseCheckRequest walks: one node per
// message on the way to the fields.
var checkRequestReader = newWireNode(checkFieldTable[:])

// wireNode is a message on the path of some fields of checkFieldTable: for each field number it
// reads, either the message below or the field itself.
type wireNode struct{ edges []wireEdge }

type wireEdge struct {
	num  protowire.Number
	next *wireNode
	leaf *checkField
}

// newWireNode builds the tree of fields; a table whose paths collide is a programming error.
func newWireNode(table []checkField) *wireNode {
	root := &wireNode{}
	for i := range table {
		c := &table[i]
		n := root
		for depth, num := range c.nums {
			e := n.edge(num)
			if e == nil {
				n.edges = append(n.edges, wireEdge{num: num})
				e = &n.edges[len(n.edges)-1]
			}
			if depth == len(c.nums)-1 {
				if e.next != nil || e.leaf != nil {
					panic("authz: checkFieldTable: " + c.path + " collides with another entry")
				}
				e.leaf = c
				break
			}
			if e.leaf != nil {
				panic("authz: checkFieldTable: " + c.path + " goes through the field of another entry")
			}
			if e.next == nil {
				e.next = &wireNode{}
			}
			n = e.next
		}
	}
	return root
}

func (n *wireNode) edge(num protowire.Number) *wireEdge {
	for i := range n.edges {
		if n.edges[i].num == num {
			return &n.edges[i]
		}
	}
	return nil
}

var errWire = errors.New("authz: malformed CheckRequest")

// ParseCheckRequest reads a serialized CheckRequest into r as the generated message would
// read it, decoded: protobuf's rules hold. A repeated occurrence of a message field merges into
// it, the last occurrence of a scalar and of a map key wins, a field of an unexpected wire type
// is an unknown field, and strings must be UTF-8. Fields not read are checked for
// well-formedness and skipped. r does not share b's memory: b may be reused afterwards.
func ParseCheckRequest(b []byte, r *Request) error {
	// One copy of the whole message, which r's strings share, rather than one copy per string
	// read: a dozen headers and the path cost one allocation instead of a score.
	return parseOwned(bytes.Clone(b), r)
}

// parseOwned is ParseCheckRequest on a buffer r may keep: r's strings share b's memory, so b
// must never change afterwards.
func parseOwned(b []byte, r *Request) error {
	var f checkFields
	if err := checkRequestReader.read(b, &f); err != nil {
		return err
	}
	*r = f.request()
	return nil
}

// read reads the message b into f: the fields of n, and the messages on their way.
func (n *wireNode) read(b []byte, f *checkFields) error {
	for len(b) > 0 {
		num, v, ok, rest, err := nextField(b)
		if err != nil {
			return err
		}
		b = rest
		if !ok {
			continue
		}
		e := n.edge(num)
		switch {
		case e == nil:
		case e.next != nil:
			err = e.next.read(v, f)
		default:
			err = e.leaf.read(v, f)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// read reads one occurrence of the field c.
func (c *checkField) read(b []byte, f *checkFields) error {
	switch c.kind {
	case kindString:
		s, err := utf8String(b)
		if err == nil {
			f.set(c.to, "", s)
		}
		return err
	case kindStringMap:
		k, v, err := mapEntry(b)
		if err == nil {
			f.set(c.to, k, v)
		}
		return err
	default: // kindHeaderValues
		k, v, err := headerEntry(b)
		if err == nil {
			f.set(c.to, k, v)
		}
		return err
	}
}

// nextField reads the first field of the message b: its number and, when it is
// length-delimited (ok), its content; a field of another wire type is checked and skipped.
func nextField(b []byte) (num protowire.Number, v []byte, ok bool, rest []byte, err error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, nil, false, nil, fmt.Errorf("%w: %v", errWire, protowire.ParseError(n))
	}
	b = b[n:]
	if typ != protowire.BytesType {
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, nil, false, nil, fmt.Errorf("%w: field %d: %v", errWire, num, protowire.ParseError(n))
		}
		return num, nil, false, b[n:], nil
	}
	v, n = protowire.ConsumeBytes(b)
	if n < 0 {
		return 0, nil, false, nil, fmt.Errorf("%w: field %d: %v", errWire, num, protowire.ParseError(n))
	}
	return num, v, true, b[n:], nil
}

// Field numbers of the messages read and written beside checkFieldTable
// (envoy/service/auth/v3, envoy/config/core/v3, google/rpc/status.proto,
// google/protobuf/struct.proto).
const (
	mapKey, mapValue = 1, 2 // a map entry

	headerKey, headerValue, headerRawValue = 1, 2, 3 // config.core.v3.HeaderValue

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

// overwrite is the append action of every header Portcullis sets: the default would add a
// second header beside a client-sent one.
const overwrite = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD

// mapEntry reads a map<string, string> entry; a missing key or value is "".
func mapEntry(b []byte) (k, v string, err error) { return stringPair(b, mapKey, mapValue, 0) }

// headerEntry reads a HeaderValue: its key, and its value, or raw_value when value is empty.
func headerEntry(b []byte) (k, v string, err error) {
	return stringPair(b, headerKey, headerValue, headerRawValue)
}

// stringPair reads a message of two string fields (key and value) and, when rawNum is not 0,
// a bytes field that stands in for an empty value. Unknown fields are skipped.
func stringPair(b []byte, keyNum, valueNum, rawNum protowire.Number) (k, v string, err error) {
	var raw []byte
	for len(b) > 0 {
		num, f, ok, rest, err := nextField(b)
		if err != nil {
			return "", "", err
		}
		b = rest
		if !ok {
			continue
		}
		switch {
		case num == keyNum:
			k, err = utf8String(f)
		case num == valueNum:
			v, err = utf8String(f)
		case rawNum != 0 && num == rawNum:
			raw = f
		}
		if err != nil {
			return "", "", err
		}
	}
	if v == "" && len(raw) > 0 {
		v = sharedString(raw)
	}
	return k, v, nil
}

func utf8String(b []byte) (string, error) {
	switch string(b) { // the scheme Envoy sends on every request, without a copy
	case "http":
		return "http", nil
	case "https":
		return "https", nil
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("%w: a string field is not UTF-8", errWire)
	}
	return sharedString(b), nil
}

// sharedString is b as a string, without a copy: b is part of the buffer parseOwned was given,
// which nothing changes.
func sharedString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// AppendCheckResponse appends d, encoded as Envoy's CheckResponse, to b: a deny as a
// denied_response with d's status, headers and body, an allow as an ok_response with the
// identity headers to set and remove, and the dynamic metadata
// {"portcullis": {"rule", "sub", "issuer", "roles"}} for Envoy's access logs (roles is the
// comma-separated list the x-user-roles header carries).
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
			b = appendHeaderOptions(b, deniedHeaders, d.Answer)
			return appendStringField(b, deniedBody, string(d.Body))
		})
	}
	b = appendMessage(b, responseStatus, func(b []byte) []byte { return b })
	b = appendMessage(b, responseOK, func(b []byte) []byte {
		b = appendHeaderOptions(b, okHeaders, d.Upstream)
		for _, h := range d.UpstreamRemove {
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
	for _, h := range d.Upstream {
		n += 12 + len(h.Name) + len(h.Value)
	}
	for _, h := range d.Answer {
		n += 12 + len(h.Name) + len(h.Value)
	}
	for _, h := range d.UpstreamRemove {
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
