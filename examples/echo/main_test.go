package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-authz/portcullis/internal/echo"
)

// TestEcho: any method and path is answered 200 with what was received, identity headers
// included; only loopback addresses are taken.
func TestEcho(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan net.Addr, 1)
	exit := make(chan int, 1)
	var out, errs bytes.Buffer
	go func() { exit <- run(ctx, []string{"-addr", "127.0.0.1:0"}, &out, &errs, listening) }()
	var addr net.Addr
	select {
	case addr = <-listening:
	case code := <-exit:
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	defer func() {
		cancel()
		select {
		case code := <-exit:
			if code != 0 {
				t.Errorf("exit %d: %s", code, errs.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("echo did not stop")
		}
	}()
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/orders/1"},
		{"POST", "/api/orders/1?x=1"},
		{"DELETE", "/anything/at/all"},
	} {
		req, _ := http.NewRequest(c.method, "http://"+addr.String()+c.path, strings.NewReader("{}"))
		req.Header.Set("X-User-Id", "alice-sub")
		req.Header.Add("X-User-Roles", "user,writer")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get(echo.Marker) != "1" || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %v", c.method, c.path, resp.StatusCode, resp.Header)
		}
		var got echo.Echoed
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%s %s: %v: %s", c.method, c.path, err, body)
		}
		if got.Method != c.method || got.Path != c.path || got.Host != addr.String() ||
			strings.Join(got.Headers["x-user-id"], ",") != "alice-sub" || strings.Join(got.Headers["x-user-roles"], ",") != "user,writer" {
			t.Errorf("%s %s: echoed %+v", c.method, c.path, got)
		}
	}
	if !strings.HasPrefix(out.String(), "echo: listening on http://127.0.0.1:") {
		t.Errorf("stdout %q", out.String())
	}
}

func TestEchoRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{":8081", "0.0.0.0:8081", "localhost", "192.0.2.1:8081"} {
		var out, errs bytes.Buffer
		if code := run(context.Background(), []string{"-addr", addr}, &out, &errs, nil); code != 2 {
			t.Errorf("-addr %s: exit %d, want 2", addr, code)
		}
		want := `echo: -addr "` + addr + `": give a loopback host:port, e.g. 127.0.0.1:8081 (this upstream echoes credentials)` + "\n"
		if errs.String() != want {
			t.Errorf("-addr %s: stderr %q", addr, errs.String())
		}
	}
}
