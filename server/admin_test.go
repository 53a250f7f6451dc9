package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAdminEndpoints: /healthz is liveness, always "ok"; /readyz says which issuers have no
// usable keys yet and why, then "ready"; only GET is served.
func TestAdminEndpoints(t *testing.T) {
	idp := newStalledIdP(t)
	path := filepath.Join(t.TempDir(), "portcullis.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(healthConfig, "%s", healthIssuers(idp), 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, _ := runWith(t, Options{ConfigPath: path})
	base := "http://" + srv.Addr("admin").String()
	ask := func(method, path string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	const text = "text/plain; charset=utf-8"
	for _, c := range []struct {
		method, path string
		status       int
		ctype, body  string
	}{
		{"GET", "/healthz", 200, text, "ok\n"},
		{"GET", "/readyz", 503, text, "not ready: no usable keys yet for " + idp.issuer + "\n" + idp.issuer + ": no fetch yet\n"},
		{"POST", "/healthz", 405, text, "Method Not Allowed\n"},
		{"GET", "/nothing", 404, text, "404 page not found\n"},
	} {
		status, ctype, body := ask(c.method, c.path)
		if status != c.status || ctype != c.ctype || body != c.body {
			t.Errorf("%s %s = %d %q %q, want %d %q %q", c.method, c.path, status, ctype, body, c.status, c.ctype, c.body)
		}
	}
	idp.release()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, _, body := ask("GET", "/readyz")
		if status == 200 {
			if body != "ready\n" {
				t.Errorf("/readyz body %q", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %d %q", status, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, _, metrics := ask("GET", "/metrics"); !strings.Contains(metrics, "\nportcullis_ready 1\n") {
		t.Error("/metrics does not say portcullis_ready 1")
	}
}

// TestReadyzWhileStopping: once shutdown has begun, /readyz answers 503 "not ready" even though
// every issuer has keys, and the key sets can no longer make the server ready again.
func TestReadyzWhileStopping(t *testing.T) {
	path, _ := writeFileConfig(t, t.TempDir(), "  grpc_addr: \"127.0.0.1:0\"", "")
	srv := newServer(t, Options{ConfigPath: path})
	h := srv.adminHandler()
	readyz := func() (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
		return w.Code, w.Body.String()
	}
	if code, body := readyz(); code != 200 || body != "ready\n" {
		t.Fatalf("keys from a file: /readyz = %d %q", code, body)
	}
	srv.stopServing()
	srv.setReadiness() // what a key set installed now would call
	if code, body := readyz(); code != 503 || body != "not ready\n" || srv.Ready() {
		t.Errorf("stopping: /readyz = %d %q, Ready %v", code, body, srv.Ready())
	}
}
