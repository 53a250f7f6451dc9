package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/internal/devidp"
	"github.com/portcullis-authz/portcullis/rules"
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

// TestWhenConfigs: the two servers of -when load, their rule under test is the one the
// benchmark request matches, and only the first has a condition.
func TestWhenConfigs(t *testing.T) {
	dir := t.TempDir()
	idp, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), idp.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		require string
		want    bool
	}{{tenantWhen, true}, {"{ any_roles: [user] }", false}} {
		cfg, err := config.Parse([]byte(configText("RS256", 10000, fmt.Sprintf(tenantRule, c.require))), dir)
		if err != nil {
			t.Fatalf("%s: %v", c.require, err)
		}
		r, _ := cfg.RuleSet.MatchRequest(&rules.Input{Method: "GET", Host: "api.example.com", Path: "/tenants/acme/orders/42"})
		if r == nil || r.Name() != "tenant-orders" || r.HasConditions() != c.want {
			t.Errorf("%s: rule %v, want tenant-orders with conditions %v", c.require, r, c.want)
		}
	}
}
