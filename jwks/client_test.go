package jwks

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-authz/portcullis/internal/proxytest"
	"github.com/portcullis-authz/portcullis/internal/testpki"
)

// clientPKI is a CA, a server certificate for idp.example.test and 127.0.0.1, and a client
// certificate, generated for one test.
type clientPKI struct {
	roots          *x509.CertPool
	server, client tls.Certificate
}

func newClientPKI(t *testing.T) *clientPKI {
	t.Helper()
	ca := testpki.New(t, "jwks test CA")
	return &clientPKI{roots: ca.Pool,
		server: ca.Issue(t, "jwks test", x509.ExtKeyUsageServerAuth, "idp.example.test", "127.0.0.1"),
		client: ca.Issue(t, "jwks test", x509.ExtKeyUsageClientAuth)}
}

// tlsIdP serves "keys" over TLS with pki's server certificate; requireClient asks for a client
// certificate signed by pki's CA.
func tlsIdP(t *testing.T, pki *clientPKI, requireClient bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "keys")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}
	if requireClient {
		srv.TLS.ClientAuth, srv.TLS.ClientCAs = tls.RequireAndVerifyClientCert, pki.roots
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func get(c *http.Client, target string) (string, error) {
	resp, err := c.Get(target)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b), err
}

// TestClientProxies: HTTPS_PROXY and HTTP_PROXY are honoured (loopback is never proxied by
// them), and ClientOptions.Proxy (issuers[].proxy_url) replaces them for every request, a
// loopback one included.
func TestClientProxies(t *testing.T) {
	pki := newClientPKI(t)
	idp := tlsIdP(t, pki, false)
	envProxy := proxytest.New(t, idp.Listener.Addr().String())
	override := proxytest.New(t, idp.Listener.Addr().String())
	t.Setenv("HTTPS_PROXY", envProxy.URL())
	t.Setenv("HTTP_PROXY", envProxy.URL())
	t.Setenv("NO_PROXY", "")
	overrideURL, _ := url.Parse(override.URL())
	cases := []struct {
		name, target string
		proxy        *url.URL
		want         string
		env, over    string // the requests each proxy saw
	}{
		{"https through HTTPS_PROXY", "https://idp.example.test/keys", nil, "200 keys", "[CONNECT idp.example.test:443]", "[]"},
		{"http through HTTP_PROXY", "http://idp.example.test/keys", nil, "200 proxied", "[GET http://idp.example.test/keys]", "[]"},
		{"loopback is not proxied", idp.URL + "/keys", nil, "200 keys", "[]", "[]"},
		{"override for https", "https://idp.example.test/keys", overrideURL, "200 keys", "[]", "[CONNECT idp.example.test:443]"},
		{"override for loopback", idp.URL + "/keys", overrideURL, "200 keys", "[]", "[CONNECT " + idp.Listener.Addr().String() + "]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			envProxy.Reset()
			override.Reset()
			client := NewClient(ClientOptions{Roots: pki.roots, Timeout: 5 * time.Second, Proxy: c.proxy})
			defer client.CloseIdleConnections()
			got, err := get(client, c.target)
			if err != nil || got != c.want {
				t.Fatalf("GET %s = %q, %v; want %q", c.target, got, err, c.want)
			}
			if got := envProxy.Requests(); got != c.env {
				t.Errorf("environment's proxy saw %s, want %s", got, c.env)
			}
			if got := override.Requests(); got != c.over {
				t.Errorf("override proxy saw %s, want %s", got, c.over)
			}
		})
	}
}

// TestClientCertificate: an identity provider that requires mutual TLS is served the
// configured client certificate; without one the handshake is refused.
func TestClientCertificate(t *testing.T) {
	pki := newClientPKI(t)
	idp := tlsIdP(t, pki, true)
	t.Setenv("HTTPS_PROXY", "")
	cases := []struct {
		name    string
		cert    *tls.Certificate
		want    string
		wantErr string
	}{
		{"with the client certificate", &pki.client, "200 keys", ""},
		{"without a client certificate", nil, "", "tls: certificate required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			client := NewClient(ClientOptions{Roots: pki.roots, Timeout: 5 * time.Second, Certificate: c.cert})
			defer client.CloseIdleConnections()
			got, err := get(client, idp.URL+"/keys")
			switch {
			case c.wantErr == "" && (err != nil || got != c.want):
				t.Errorf("got %q, %v; want %q", got, err, c.want)
			case c.wantErr != "" && (err == nil || !strings.HasSuffix(err.Error(), c.wantErr)):
				t.Errorf("got %q, %v; want an error ending %q", got, err, c.wantErr)
			}
		})
	}
}
