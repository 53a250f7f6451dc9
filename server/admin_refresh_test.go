package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/portcullis-authz/portcullis/internal/devidp"
)

// refreshIdP is a development issuer over plain HTTP that counts its key-set requests and can
// be made to fail them.
type refreshIdP struct {
	srv    *httptest.Server
	jwks   atomic.Int64
	failed atomic.Bool
}

func newRefreshIdP(t *testing.T) *refreshIdP {
	t.Helper()
	idp, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	p := &refreshIdP{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/jwks" {
			p.jwks.Add(1)
			if p.failed.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
		}
		idp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	idp.SetIssuer(p.srv.URL)
	return p
}

const refreshConfig = `
server:
  grpc_addr: "127.0.0.1:0"
  http_addr: "127.0.0.1:0"
  admin_addr: "127.0.0.1:0"
issuers:
  - issuer: %q
    audiences: [orders-api]
    refresh_interval: 1h
    min_refresh_interval: %s
  - issuer: https://sso.example.com/realms/files
    jwks_file: keys.json
    audiences: [orders-api]
rules:
  - name: api
    match: { paths: ["/api/**"] }
`

// startRefreshServer runs a server for idp with the given fetch floor, ready.
func startRefreshServer(t *testing.T, idp *refreshIdP, floor string) *Server {
	t.Helper()
	dir := t.TempDir()
	files, _ := devidp.New()
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), files.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "portcullis.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(refreshConfig, idp.srv.URL, floor)), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := runServer(t, path)
	for deadline := time.Now().Add(10 * time.Second); !srv.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
	}
	return srv
}

func ask(t *testing.T, method, target string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, target, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func refreshCounter(t *testing.T, srv *Server, issuer, result string) float64 {
	t.Helper()
	families, err := srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "portcullis_jwks_refreshes_total" {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			want := map[string]string{"issuer": issuer, "result": result, "trigger": "admin"}
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// TestAdminJWKSRefresh: POST /admin/jwks/refresh?issuer= fetches that issuer's keys now on the
// admin listener, answering the key status after it; it is refused with the reason for a
// wrong method, a missing or unknown issuer and a jwks_file issuer; a failure keeps the keys.
// The authorization listeners never serve it.
func TestAdminJWKSRefresh(t *testing.T) {
	idp := newRefreshIdP(t)
	srv := startRefreshServer(t, idp, "1ms")
	iss := idp.srv.URL
	admin := "http://" + srv.Addr("admin").String() + "/admin/jwks/refresh"
	const files = "https://sso.example.com/realms/files"
	cases := []struct {
		name, method, query string
		fail                bool
		status              int
		body                string // the exact JSON, last_success replaced by "T"
		fetches             int64  // key-set requests the call made
	}{
		{"refresh", "POST", "?issuer=" + iss, false, 200,
			`{"issuer":"` + iss + `","refreshed":true,"keys":2,"source":"fetched","jwks_uri":"` + iss + `/jwks","last_success":"T","consecutive_failures":0}`, 1},
		{"failed fetch keeps the keys", "POST", "?issuer=" + iss, true, 502,
			`{"issuer":"` + iss + `","refreshed":false,"error":"the fetch failed; the last good keys are kept: jwks: GET ` + iss + `/jwks: HTTP 503","keys":2,"source":"fetched","jwks_uri":"` + iss + `/jwks","last_success":"T","last_error":"jwks: GET ` + iss + `/jwks: HTTP 503","consecutive_failures":1}`, 1},
		{"recovered", "POST", "?issuer=" + iss, false, 200,
			`{"issuer":"` + iss + `","refreshed":true,"keys":2,"source":"fetched","jwks_uri":"` + iss + `/jwks","last_success":"T","consecutive_failures":0}`, 1},
		{"jwks_file issuer", "POST", "?issuer=" + files, false, 409,
			`{"issuer":"` + files + `","refreshed":false,"error":"not refreshed: the keys of ` + files + ` come from its jwks_file, which is never fetched; edit the file and reload","keys":2,"source":"file","consecutive_failures":0}`, 0},
		{"unknown issuer", "POST", "?issuer=https://nope.example.com", false, 404,
			`{"error":"issuer \"https://nope.example.com\" is not configured; configured issuers: ` + iss + `, ` + files + `"}`, 0},
		{"no issuer", "POST", "", false, 400,
			`{"error":"name the issuer: POST /admin/jwks/refresh?issuer=\u003cissuer\u003e; configured issuers: ` + iss + `, ` + files + `"}`, 0},
		{"GET", "GET", "?issuer=" + iss, false, 405, "Method Not Allowed", 0},
		{"PUT", "PUT", "?issuer=" + iss, false, 405, "Method Not Allowed", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			idp.failed.Store(c.fail)
			before := idp.jwks.Load()
			// The 1ms floor has passed since the previous call.
			time.Sleep(2 * time.Millisecond)
			status, header, body := ask(t, c.method, admin+c.query)
			var doc map[string]any
			if json.Unmarshal([]byte(body), &doc) == nil {
				if _, ok := doc["last_success"]; ok {
					doc["last_success"] = "T"
				}
				b, _ := json.Marshal(doc)
				body = string(b)
				var want map[string]any
				_ = json.Unmarshal([]byte(c.body), &want)
				w, _ := json.Marshal(want)
				c.body = string(w)
			} else {
				body = string([]byte(body[:len(body)-1])) // http.Error's newline
			}
			if status != c.status || body != c.body {
				t.Errorf("%s %s = %d %s\nwant %d %s", c.method, c.query, status, body, c.status, c.body)
			}
			if c.status == 405 && header.Get("Allow") != "POST" {
				t.Errorf("Allow = %q", header.Get("Allow"))
			}
			if got := idp.jwks.Load() - before; got != c.fetches {
				t.Errorf("key-set requests: %d, want %d", got, c.fetches)
			}
		})
	}
	if ok, bad := refreshCounter(t, srv, iss, "success"), refreshCounter(t, srv, iss, "error"); ok != 2 || bad != 1 {
		t.Errorf(`portcullis_jwks_refreshes_total{trigger="admin"}: success %v, error %v; want 2, 1`, ok, bad)
	}

	// Never on the authorization listeners: the HTTP front decides the request as any other
	// (no rule matches), the gRPC front too, and nothing is fetched.
	before := idp.jwks.Load()
	if status, _, body := ask(t, "POST", "http://"+srv.Addr("http").String()+"/admin/jwks/refresh?issuer="+iss); status != 403 || body != `{"error":"access_denied","error_description":"no rule allows this request"}` {
		t.Errorf("HTTP front: %d %s", status, body)
	}
	conn, err := grpc.NewClient(srv.Addr("grpc").String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), checkRequest("POST", "h", "/admin/jwks/refresh?issuer="+iss, nil))
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 403 {
		t.Errorf("gRPC front: %v %v", resp, err)
	}
	if got := idp.jwks.Load() - before; got != 0 {
		t.Errorf("the authorization listeners fetched keys %d times", got)
	}
}

// TestAdminJWKSRefreshUnderTheFloor: within min_refresh_interval of the last fetch nothing is
// sent: 429 with Retry-After and the key status.
func TestAdminJWKSRefreshUnderTheFloor(t *testing.T) {
	idp := newRefreshIdP(t)
	srv := startRefreshServer(t, idp, "1h")
	iss := idp.srv.URL
	before := idp.jwks.Load()
	status, header, body := ask(t, "POST", "http://"+srv.Addr("admin").String()+"/admin/jwks/refresh?issuer="+iss)
	var doc map[string]any
	_ = json.Unmarshal([]byte(body), &doc)
	delete(doc, "last_success")
	got, _ := json.Marshal(doc)
	want := `{"consecutive_failures":0,"error":"not refreshed: the last fetch of ` + iss + ` started less than min_refresh_interval (1h0m0s) ago; retry in 3600s","issuer":"` + iss + `","jwks_uri":"` + iss + `/jwks","keys":2,"refreshed":false,"retry_after_seconds":3600,"source":"fetched"}`
	if status != 429 || header.Get("Retry-After") != "3600" || string(got) != want {
		t.Errorf("= %d Retry-After %q %s\nwant 429 Retry-After 3600 %s", status, header.Get("Retry-After"), got, want)
	}
	if n := idp.jwks.Load() - before; n != 0 {
		t.Errorf("%d key-set requests under the floor", n)
	}
	if ok, bad := refreshCounter(t, srv, iss, "success"), refreshCounter(t, srv, iss, "error"); ok != 0 || bad != 0 {
		t.Errorf(`refreshes{trigger="admin"}: %v %v, want 0 0`, ok, bad)
	}
}
