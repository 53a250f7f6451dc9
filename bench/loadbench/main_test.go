package main

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
		want bool
	}{
		{"allow", &authv3.CheckResponse{Status: &rpcstatus.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{HeadersToRemove: []string{"x"}}}}, true},
		{"empty allow", &authv3.CheckResponse{HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}, true},
		{"deny", &authv3.CheckResponse{Status: &rpcstatus.Status{Code: 16}, HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: 401}, Body: "{}"}}}, false},
		{"nothing", &authv3.CheckResponse{}, false},
	} {
		wire, err := proto.Marshal(c.resp)
		if err != nil {
			t.Fatal(err)
		}
		var a rawAnswer
		if err := (rawCodec{}).Unmarshal(wire, &a); err != nil || a.allowed != c.want {
			t.Errorf("%s: allowed %v, err %v; want %v", c.name, a.allowed, err, c.want)
		}
	}
	var a rawAnswer
	if err := (rawCodec{}).Unmarshal([]byte{0x1a, 0x05}, &a); err == nil {
		t.Error("a truncated answer was accepted")
	}
}
