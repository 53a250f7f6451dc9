package load

import (
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

// TestRawCodecTellsAllowFromDeny: the load generator's undecoded answers are still checked.
func TestRawCodecTellsAllowFromDeny(t *testing.T) {
	for _, c := range []struct {
		name string
		resp *authv3.CheckResponse
		want Answer
	}{
		{"allow", &authv3.CheckResponse{Status: &rpcstatus.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{HeadersToRemove: []string{"x"}}}}, Answer{Allowed: true}},
		{"empty allow", &authv3.CheckResponse{HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}, Answer{Allowed: true}},
		{"deny", &authv3.CheckResponse{Status: &rpcstatus.Status{Code: 16}, HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: 401}, Body: "{}"}}}, Answer{Denied: true}},
		{"nothing", &authv3.CheckResponse{}, Answer{}},
	} {
		wire, err := proto.Marshal(c.resp)
		if err != nil {
			t.Fatal(err)
		}
		var a Answer
		if err := (RawCodec{}).Unmarshal(wire, &a); err != nil || a != c.want {
			t.Errorf("%s: answer %+v, err %v; want %+v", c.name, a, err, c.want)
		}
	}
	var a Answer
	if err := (RawCodec{}).Unmarshal([]byte{0x1a, 0x05}, &a); err == nil {
		t.Error("a truncated answer was accepted")
	}
}
