package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDevPlayground runs `portcullis dev`, takes the printed tokens and gets allow and deny
// answers through both the gRPC and the HTTP front.
func TestDevPlayground(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errs syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"dev", "--addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, strings.NewReader(""), &out, &errs)
	}()
	defer func() {
		cancel()
		select {
		case code := <-exit:
			if code != 0 {
				t.Errorf("dev exited %d: %s", code, errs.String())
			}
		case <-time.After(20 * time.Second):
			t.Error("dev did not stop")
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "portcullis check") {
		if time.Now().After(deadline) {
			t.Fatalf("no banner; stdout:\n%s\nstderr:\n%s", out.String(), errs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	banner := out.String()
	if !strings.Contains(banner, "NEVER USE IN PRODUCTION") {
		t.Error("the banner does not warn against production use")
	}
	field := func(re string) string {
		m := regexp.MustCompile(re).FindStringSubmatch(banner)
		if m == nil {
			t.Fatalf("banner lacks %s:\n%s", re, banner)
		}
		return m[1]
	}
	grpcAddr := field(`(?m)^  gRPC\s+(\S+)`)
	httpAddr := field(`(?m)^  HTTP\s+(\S+)`)
	alice := field(`TOKEN_ALICE=(\S+)`)
	bob := field(`TOKEN_BOB=(\S+)`)
	expired := field(`TOKEN_EXPIRED=(\S+)`)
	carol := field(`TOKEN_CAROL=(\S+)`)

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	check := func(method, path, tok string) int {
		t.Helper()
		req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: method, Host: "api.local", Path: path, Headers: map[string]string{"authorization": "Bearer " + tok}},
		}}}
		// The issuer's keys load in the background; the first answers may be 503.
		for i := 0; ; i++ {
			resp, err := client.Check(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			status := 200
			if resp.GetOkResponse() == nil {
				status = int(resp.GetDeniedResponse().GetStatus().GetCode())
			}
			if status != 503 || i > 200 {
				return status
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, c := range []struct {
		who, method, path, tok string
		want                   int
	}{
		{"alice reads", "GET", "/api/orders/1", alice, 200},
		{"alice writes", "POST", "/api/orders/1", alice, 200},
		{"bob writes", "POST", "/api/orders/1", bob, 403},
		{"carol administers", "GET", "/api/admin/users", carol, 200},
		{"bob administers", "GET", "/api/admin/users", bob, 403},
		{"expired", "GET", "/api/orders/1", expired, 401},
	} {
		if got := check(c.method, c.path, c.tok); got != c.want {
			t.Errorf("gRPC %s: %d, want %d", c.who, got, c.want)
		}
	}

	forward := func(tok string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+httpAddr+"/", nil)
		req.Header.Set("X-Forwarded-Method", "GET")
		req.Header.Set("X-Forwarded-Uri", "/api/orders/1")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := forward(alice); resp.StatusCode != 200 || resp.Header.Get("X-User-Name") != "alice" {
		t.Errorf("HTTP alice: %d x-user-name=%q", resp.StatusCode, resp.Header.Get("X-User-Name"))
	}
	if resp := forward(""); resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="portcullis"` {
		t.Errorf("HTTP without token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}
