package load

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"
)

func TestMimicAnswersTheFilesAllowOnceItExists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "allow.pb")
	m := &Mimic{Path: path}
	ctx := context.Background()
	empty := func(r *authv3.CheckResponse) bool {
		return r.GetOkResponse() != nil && len(r.GetOkResponse().GetHeaders()) == 0
	}
	if r, _ := m.Check(ctx, &authv3.CheckRequest{}); !empty(r) {
		t.Fatalf("no file yet: %v, want the empty OK", r)
	}
	// A file that is not an allow is not answered.
	deny, _ := proto.Marshal(&authv3.CheckResponse{HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{}}})
	if err := os.WriteFile(path, deny, 0o600); err != nil {
		t.Fatal(err)
	}
	if r, _ := m.Check(ctx, &authv3.CheckRequest{}); !empty(r) {
		t.Fatalf("a deny in the file: %v, want the empty OK", r)
	}
	allow := &authv3.CheckResponse{HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
		Headers:         []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-user-id", Value: "alice"}}},
		HeadersToRemove: []string{"x-user-email"},
	}}}
	b, _ := proto.Marshal(allow)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 { // read once, then kept
		r, _ := m.Check(ctx, &authv3.CheckRequest{})
		if !proto.Equal(r, allow) {
			t.Fatalf("answer = %v, want the file's allow %v", r, allow)
		}
		_ = os.Remove(path)
	}
}
