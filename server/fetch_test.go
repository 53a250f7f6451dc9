package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/portcullis-authz/portcullis/authz"
	"github.com/portcullis-authz/portcullis/internal/devidp"
	"github.com/portcullis-authz/portcullis/internal/proxytest"
	"github.com/portcullis-authz/portcullis/reason"
)

// mutualTLSIdP is a development issuer served over TLS that requires a client certificate
// from pki's CA; the client certificate and its key are written beside the CA as client.pem
// and client-key.pem. A non-nil introspection answers /introspect on the same server.
func mutualTLSIdP(t *testing.T, pki *testPKI, introspection http.Handler) (*devidp.IdP, *httptest.Server) {
	t.Helper()
	idp, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	var handler http.Handler = idp
	if introspection != nil {
		mux := http.NewServeMux()
		mux.Handle("/", idp)
		mux.Handle("/introspect", introspection)
		handler = mux
	}
	srv := httptest.NewUnstartedServer(handler)
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki.dir, "server.pem"), filepath.Join(pki.dir, "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.pool, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	idp.SetIssuer(srv.URL)
	writePEM(t, filepath.Join(pki.dir, "client.pem"), "CERTIFICATE", pki.client.Certificate[0])
	der, err := x509.MarshalPKCS8PrivateKey(pki.client.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(pki.dir, "client-key.pem"), "PRIVATE KEY", der)
	return idp, srv
}

const fetchConfig = `
server:
  grpc_addr: "127.0.0.1:0"
  http_addr: ""
  admin_addr: "127.0.0.1:0"
issuers:
  - issuer: %q
    audiences: [orders-api]
    ca_file: ca.pem
%s
rules:
  - name: api
    match: { paths: ["/api/**"] }
`

// TestFetchThroughProxyWithClientCertificate: an issuer's proxy_url carries its discovery and
// key-set requests whatever HTTPS_PROXY says, and its client certificate passes an identity
// provider that requires mutual TLS; without the certificate the exact fetch error is in the
// log and in /readyz.
func TestFetchThroughProxyWithClientCertificate(t *testing.T) {
	pki := newPKI(t)
	idp, srv := mutualTLSIdP(t, pki, nil)
	proxy := proxytest.New(t, srv.Listener.Addr().String())
	envProxy := proxytest.New(t, srv.Listener.Addr().String())
	t.Setenv("HTTPS_PROXY", envProxy.URL())
	t.Setenv("NO_PROXY", "")
	host := srv.Listener.Addr().String()
	wantErr := regexp.MustCompile(`^` + regexp.QuoteMeta(fmt.Sprintf(`jwks: discovery: Get "%s/.well-known/openid-configuration": `, srv.URL)) +
		`(readLoopPeekFailLocked: )?remote error: tls: certificate required$`)
	cases := []struct {
		name, issuer string
		ready        bool
		proxySaw     string
	}{
		{"client certificate through the issuer's proxy", `    client_cert_file: client.pem
    client_key_file: client-key.pem
    proxy_url: ` + proxy.URL(), true, "[CONNECT " + host + "]"},
		{"client certificate, no proxy (loopback is not proxied by HTTPS_PROXY)", `    client_cert_file: client.pem
    client_key_file: client-key.pem`, true, "[]"},
		{"no client certificate", ``, false, "[]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			proxy.Reset()
			path := filepath.Join(pki.dir, "portcullis.yaml")
			if err := os.WriteFile(path, []byte(fmt.Sprintf(fetchConfig, srv.URL, c.issuer)), 0o600); err != nil {
				t.Fatal(err)
			}
			var logs logBuffer
			s, _ := runWith(t, Options{ConfigPath: path, Logger: logs.logger()})
			readyz := "http://" + s.Addr("admin").String() + "/readyz"
			var status int
			var body string
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				status, body = getBody(t, readyz)
				if status == 200 || strings.Contains(body, "the last fetch failed") {
					break
				}
			}
			if !c.ready {
				// The error as the HTTP client gave it (the transport sometimes names its read
				// loop), the same in the log and in /readyz.
				logged := loggedError(logs.String(), "jwks: no key set yet; tokens of this issuer are answered 503")
				if !wantErr.MatchString(logged) {
					t.Errorf("logged err %q, want it to match %s\n%s", logged, wantErr, logs.String())
				}
				want := regexp.MustCompile(`^` + regexp.QuoteMeta("not ready: no usable keys yet for "+srv.URL+"\n"+srv.URL+": the last fetch failed (") +
					`[1-9][0-9]* in a row\): ` + regexp.QuoteMeta(logged) + "\n$")
				if status != 503 || !want.MatchString(body) {
					t.Errorf("/readyz = %d %q, want 503 with %q", status, body, logged)
				}
				return
			}
			if status != 200 || body != "ready\n" {
				t.Fatalf("/readyz = %d %q\n%s", status, body, logs.String())
			}
			if got := proxy.Requests(); got != c.proxySaw {
				t.Errorf("issuer's proxy saw %s, want %s", got, c.proxySaw)
			}
			if got := envProxy.Requests(); got != "[]" {
				t.Errorf("HTTPS_PROXY saw %s, want nothing", got)
			}
			tok, err := idp.Mint(jwa.RS256, devidp.Claims{"sub": "u", "aud": "orders-api"}, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			d := s.authz.Engine().Decide(context.Background(), &authz.Request{Method: "GET", Host: "h", Path: "/api/x",
				Headers: map[string]string{"authorization": "Bearer " + tok}})
			if d.Status != 200 || d.Reason != reason.OK {
				t.Errorf("decision %d %s %s", d.Status, d.Reason, d.Detail)
			}
		})
	}
}

// introspectionFetchConfig is an issuer behind a proxy that requires a client certificate, with
// an introspection endpoint on the same server, required on the api route.
const introspectionFetchConfig = `
server:
  grpc_addr: "127.0.0.1:0"
  http_addr: ""
  admin_addr: "127.0.0.1:0"
issuers:
  - issuer: %q
    audiences: [orders-api]
    ca_file: ca.pem
    client_cert_file: client.pem
    client_key_file: client-key.pem
    proxy_url: %s
    introspection:
      endpoint: %q
      client_id: portcullis
      client_secret_file: secret
rules:
  - name: api
    match: { paths: ["/api/**"] }
    require: { active: true }
`

// TestIntrospectionThroughProxyWithClientCertificate: introspection requests go the way the
// issuer's key-set requests go: through its proxy_url (not HTTPS_PROXY), presenting its client
// certificate to an identity provider that requires mutual TLS.
func TestIntrospectionThroughProxyWithClientCertificate(t *testing.T) {
	pki := newPKI(t)
	var calls atomic.Int32
	idp, srv := mutualTLSIdP(t, pki, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "envoy" {
			http.Error(w, "no client certificate", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"active": true, "sub": "u"}`)
	}))
	host := srv.Listener.Addr().String()
	proxy := proxytest.New(t, host)
	envProxy := proxytest.New(t, host)
	t.Setenv("HTTPS_PROXY", envProxy.URL())
	t.Setenv("NO_PROXY", "")
	if err := os.WriteFile(filepath.Join(pki.dir, "secret"), []byte(introspectionTestSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(pki.dir, "portcullis.yaml")
	cfg := fmt.Sprintf(introspectionFetchConfig, srv.URL, proxy.URL(), srv.URL+"/introspect")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	s, _ := runWith(t, Options{ConfigPath: path, Logger: logs.logger()})
	readyz := "http://" + s.Addr("admin").String() + "/readyz"
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if status, _ := getBody(t, readyz); status == 200 {
			break
		}
	}
	// The key-set client's one tunnel (discovery and key set share its connection).
	if got, want := proxy.Requests(), "[CONNECT "+host+"]"; got != want {
		t.Fatalf("before introspecting, the issuer's proxy saw %s, want %s\n%s", got, want, logs.String())
	}
	tok, err := idp.Mint(jwa.RS256, devidp.Claims{"sub": "u", "aud": "orders-api"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	d := s.authz.Engine().Decide(context.Background(), &authz.Request{Method: "GET", Host: "h", Path: "/api/x",
		Headers: map[string]string{"authorization": "Bearer " + tok}})
	if d.Status != 200 || d.Reason != reason.OK {
		t.Errorf("decision %d %s %s\n%s", d.Status, d.Reason, d.Detail, logs.String())
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("introspection endpoint answered %d calls, want 1", n)
	}
	// The introspection client's own tunnel, through the issuer's proxy.
	if got, want := proxy.Requests(), "[CONNECT "+host+" CONNECT "+host+"]"; got != want {
		t.Errorf("issuer's proxy saw %s, want %s", got, want)
	}
	if got := envProxy.Requests(); got != "[]" {
		t.Errorf("HTTPS_PROXY saw %s, want nothing", got)
	}
}

func getBody(t *testing.T, target string) (int, string) {
	t.Helper()
	resp, err := http.Get(target)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// loggedError is the err of the first JSON log line with message msg; "" when there is none.
func loggedError(logs, msg string) string {
	for _, line := range strings.Split(logs, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			s, _ := rec["err"].(string)
			return s
		}
	}
	return ""
}
