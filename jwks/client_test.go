package jwks

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-authz/portcullis/internal/proxytest"
)

// clientPKI is a CA, a server certificate for idp.example.test and 127.0.0.1, and a client
// certificate, generated for one test.
type clientPKI struct {
	roots          *x509.CertPool
	server, client tls.Certificate
}

func newClientPKI(t *testing.T) *clientPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "jwks test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "jwks test"},
			DNSNames: []string{"idp.example.test"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &clientPKI{roots: roots, server: issue(2, x509.ExtKeyUsageServerAuth), client: issue(3, x509.ExtKeyUsageClientAuth)}
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
