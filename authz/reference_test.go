package authz

import (
	"fmt"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// The reference translation: what the gRPC front would do with the generated Envoy messages.
// The server never runs it; the wire tests and FuzzParseCheckRequest hold ParseCheckRequest
// and AppendCheckResponse to it.

// RequestFromCheck reads the decoded req into a Request by the names of checkFieldTable's
// paths, where ParseCheckRequest follows their field numbers; both end in checkFields.request.
func RequestFromCheck(req *authv3.CheckRequest) Request {
	var f checkFields
	for i := range checkFieldTable {
		c := &checkFieldTable[i]
		c.readMessage(req.ProtoReflect(), strings.Split(c.path, "."), &f)
	}
	return f.request()
}

// readMessage reads c, whose path from m on is names, into f. A path that does not fit the
// descriptor panics: TestCheckFieldTable says which.
func (c *checkField) readMessage(m protoreflect.Message, names []string, f *checkFields) {
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(names[0]))
	if fd == nil {
		panic(fmt.Sprintf("%s: %s has no field %s", c.path, m.Descriptor().FullName(), names[0]))
	}
	if len(names) > 1 {
		if m.Has(fd) {
			c.readMessage(m.Get(fd).Message(), names[1:], f)
		}
		return
	}
	if err := c.fits(fd); err != nil {
		panic(err)
	}
	v := m.Get(fd)
	switch c.kind {
	case kindString:
		if m.Has(fd) {
			f.set(c.to, "", v.String())
		}
	case kindStringMap:
		v.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			f.set(c.to, k.String(), v.String())
			return true
		})
	case kindHeaderValues:
		l := v.List()
		for i := range l.Len() {
			h := l.Get(i).Message()
			field := func(name string) protoreflect.Value {
				return h.Get(h.Descriptor().Fields().ByName(protoreflect.Name(name)))
			}
			value := field("value").String()
			if raw := field("raw_value").Bytes(); value == "" && len(raw) > 0 {
				value = string(raw)
			}
			f.set(c.to, field("key").String(), value)
		}
	}
}

var kindNames = map[fieldKind]string{
	kindString:       "a string",
	kindStringMap:    "a map<string, string>",
	kindHeaderValues: "a repeated envoy.config.core.v3.HeaderValue",
}

// fits says whether the descriptor of c's last field is of c's kind.
func (c *checkField) fits(fd protoreflect.FieldDescriptor) error {
	stringMap := fd.IsMap() && fd.MapKey().Kind() == protoreflect.StringKind && fd.MapValue().Kind() == protoreflect.StringKind
	var ok bool
	switch c.kind {
	case kindString:
		ok = fd.Kind() == protoreflect.StringKind && fd.Cardinality() != protoreflect.Repeated
	case kindStringMap:
		ok = stringMap
	case kindHeaderValues:
		ok = fd.IsList() && fd.Kind() == protoreflect.MessageKind && fd.Message().FullName() == "envoy.config.core.v3.HeaderValue"
	}
	if !ok {
		return fmt.Errorf("%s: %s is not %s", c.path, fd.FullName(), kindNames[c.kind])
	}
	return nil
}

// TestCheckFieldTable: every entry's names and numbers are the same path through Envoy's
// descriptor, ending in a field of the entry's kind, and HeaderValue's field numbers are the
// ones the parser reads.
func TestCheckFieldTable(t *testing.T) {
	for _, c := range checkFieldTable {
		names := strings.Split(c.path, ".")
		if len(names) != len(c.nums) {
			t.Errorf("%s: %d names, %d numbers", c.path, len(names), len(c.nums))
			continue
		}
		md := (&authv3.CheckRequest{}).ProtoReflect().Descriptor()
		for i, name := range names {
			fd := md.Fields().ByName(protoreflect.Name(name))
			if fd == nil {
				t.Errorf("%s: %s has no field %s", c.path, md.FullName(), name)
				break
			}
			if fd.Number() != c.nums[i] {
				t.Errorf("%s: %s is field %d, the table says %d", c.path, fd.FullName(), fd.Number(), c.nums[i])
			}
			if i == len(names)-1 {
				if err := c.fits(fd); err != nil {
					t.Error(err)
				}
				break
			}
			if fd.Message() == nil || fd.IsList() || fd.IsMap() {
				t.Errorf("%s: %s is not a message to read into", c.path, fd.FullName())
				break
			}
			md = fd.Message()
		}
	}
	hv := (&corev3.HeaderValue{}).ProtoReflect().Descriptor().Fields()
	for name, num := range map[protoreflect.Name]protowire.Number{"key": headerKey, "value": headerValue, "raw_value": headerRawValue} {
		if got := hv.ByName(name).Number(); got != num {
			t.Errorf("HeaderValue.%s is field %d, the parser reads %d", name, got, num)
		}
	}
}

// TestWireTreeRejectsCollisions: two entries for one field, or an entry inside another's
// field, are refused when the tree is built.
func TestWireTreeRejectsCollisions(t *testing.T) {
	for name, table := range map[string][]checkField{
		"same field": {{"a", wirePath{1, 2}, kindString, partMethod}, {"b", wirePath{1, 2}, kindString, partMethod}},
		"inside":     {{"a", wirePath{1, 2}, kindString, partMethod}, {"b", wirePath{1, 2, 3}, kindString, partMethod}},
		"around":     {{"a", wirePath{1, 2, 3}, kindString, partMethod}, {"b", wirePath{1, 2}, kindString, partMethod}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			newWireNode(table)
		}()
	}
}

// CheckResponse builds Envoy's answer for d as a generated message: what AppendCheckResponse
// writes.
func CheckResponse(d *Decision) *authv3.CheckResponse {
	if !d.Allow {
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(rpcCode(d.Status)), Message: string(d.Reason)},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.Status)},
				Headers: headerOptions(d.Answer),
				Body:    string(d.Body),
			}},
		}
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code.Code_OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers:         headerOptions(d.Upstream),
			HeadersToRemove: d.UpstreamRemove,
		}},
		DynamicMetadata: dynamicMetadata(d),
	}
}

// headerOptions sets each header with OVERWRITE_IF_EXISTS_OR_ADD (allocated in three slices, as
// a generated-message server tuned for this would).
func headerOptions(hs []Header) []*corev3.HeaderValueOption {
	if len(hs) == 0 {
		return nil
	}
	out := make([]*corev3.HeaderValueOption, len(hs))
	vals := make([]corev3.HeaderValue, len(hs))
	opts := make([]corev3.HeaderValueOption, len(hs))
	for i, h := range hs {
		vals[i] = corev3.HeaderValue{Key: h.Name, Value: h.Value}
		opts[i] = corev3.HeaderValueOption{Header: &vals[i], AppendAction: overwrite}
		out[i] = &opts[i]
	}
	return out
}

// dynamicMetadata is the dynamic metadata {"portcullis": {"sub", "issuer", "roles", "rule"}}.
func dynamicMetadata(d *Decision) *structpb.Struct {
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
