//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/portcullis-authz/portcullis/internal/devidp"
)

// TestCertificateBoundTokens: Envoy terminates mutual TLS and passes the client certificate to
// Portcullis (include_peer_certificate: true); a token bound to a certificate (cnf.x5t#S256,
// RFC 8705) is allowed over a connection with that certificate and refused over one with
// another, and a rule with require.sender_constrained refuses an unbound token.
//
// The bound tokens are minted by a test issuer (a jwks_file issuer), not by Keycloak: Keycloak
// binds tokens to a certificate only when its token endpoint itself sees the client's TLS
// certificate, which needs Keycloak served over HTTPS with client-certificate authentication
// and a truststore (a keystore setup, an HTTPS listener and a restart of the shared Keycloak of
// this suite). What Portcullis checks, cnf.x5t#S256 against the certificate Envoy passes, is the
// same whoever signed the token.
func TestCertificateBoundTokens(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCA(t)
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.Raw)
	srvDER, srvKey := issueCert(t, ca, caKey, "127.0.0.1", true)
	writePEM(t, filepath.Join(dir, "server.pem"), "CERTIFICATE", srvDER)
	writeKey(t, filepath.Join(dir, "server-key.pem"), srvKey)
	rightDER, rightKey := issueCert(t, ca, caKey, "client-a", false)
	otherDER, otherKey := issueCert(t, ca, caKey, "client-b", false)

	idp, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	const issuer = "https://mtls-issuer.example.test"
	idp.SetIssuer(issuer)
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), idp.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(rightDER)
	x5t := base64.RawURLEncoding.EncodeToString(sum[:])
	mint := func(extra devidp.Claims) string {
		c := devidp.Claims{"sub": "svc-a", "aud": "orders-api", "typ": "Bearer", "preferred_username": "svc-a"}
		for k, v := range extra {
			c[k] = v
		}
		tok, err := idp.Mint(jwa.RS256, c, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	bound := mint(devidp.Claims{"cnf": map[string]any{"x5t#S256": x5t}})
	unbound := mint(nil)

	ports, err := freePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	grpcPort, adminPort, envoyPort, envoyAdminPort := ports[0], ports[1], ports[2], ports[3]
	upstream := startEchoUpstream()
	t.Cleanup(upstream.Close)

	pcConfig := filepath.Join(dir, "portcullis.yaml")
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	if err := os.WriteFile(pcConfig, []byte(fmt.Sprintf(`server:
  grpc_addr: "127.0.0.1:%d"
  http_addr: ""
  admin_addr: "127.0.0.1:%d"
issuers:
  - issuer: %q
    jwks_file: keys.json
    audiences: [orders-api]
    algorithms: [RS256]
rules:
  - name: strict
    match: { paths: ["/strict/**"] }
    require: { sender_constrained: true }
  - name: api
    match: { paths: ["/api/**"] }
`, grpcPort, adminPort, issuer)), 0o600); err != nil {
		t.Fatal(err)
	}
	pc, err := env.startPortcullisWith("mtls-portcullis", pcConfig, adminURL)
	if err != nil {
		t.Fatalf("%v\n%s", err, tailOf(pc))
	}
	t.Cleanup(func() { pc.stop(10 * time.Second) })

	envoyConfig := filepath.Join(dir, "envoy.yaml")
	if err := os.WriteFile(envoyConfig, []byte(fmt.Sprintf(mtlsEnvoy, envoyAdminPort, envoyPort,
		filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), filepath.Join(dir, "ca.pem"),
		grpcPort, upstream.port())), 0o600); err != nil {
		t.Fatal(err)
	}
	ev, err := env.startEnvoyWith("mtls-envoy", envoyConfig, fmt.Sprintf("http://127.0.0.1:%d", envoyAdminPort))
	if err != nil {
		t.Fatalf("%v\n%s", err, tailOf(ev))
	}
	t.Cleanup(func() { ev.stop(10 * time.Second) })

	roots := x509.NewCertPool()
	roots.AddCert(ca)
	clientWith := func(der []byte, key *ecdsa.PrivateKey) *http.Client {
		tc := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
		if der != nil {
			tc.Certificates = []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	}
	base := fmt.Sprintf("https://127.0.0.1:%d", envoyPort)
	get := func(c *http.Client, path, tok string) (int, string, bool) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.Header.Get("X-Echo") == "1" {
			return resp.StatusCode, "", true
		}
		var doc map[string]string
		_ = json.Unmarshal(body, &doc)
		return resp.StatusCode, doc["error"] + " | " + resp.Header.Get("Www-Authenticate"), false
	}
	const wantInvalid = `invalid_token | DPoP error="invalid_token", error_description="the access token is invalid", algs="RS256", Bearer realm="portcullis"`
	right, other := clientWith(rightDER, rightKey), clientWith(otherDER, otherKey)
	cases := []struct {
		name   string
		c      *http.Client
		path   string
		tok    string
		status int
		deny   string // error | www-authenticate of a deny
	}{
		{"the certificate the token is bound to", right, "/api/orders/1", bound, 200, ""},
		{"another certificate", other, "/api/orders/1", bound, 401, wantInvalid},
		{"bound token on a sender_constrained rule", right, "/strict/x", bound, 200, ""},
		{"unbound token on a sender_constrained rule", right, "/strict/x", unbound, 401, wantInvalid},
		{"unbound token on an ordinary rule", other, "/api/orders/1", unbound, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, deny, reached := get(c.c, c.path, c.tok)
			if status != c.status || reached != (c.status == 200) || deny != map[bool]string{true: "", false: c.deny}[reached] {
				t.Fatalf("got %d reached %v %q, want %d %q", status, reached, deny, c.status, c.deny)
			}
		})
	}
	t.Run("no client certificate: the TLS handshake fails", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/orders/1", nil)
		if resp, err := clientWith(nil, nil).Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("got %d without a client certificate, want a refused handshake", resp.StatusCode)
		}
	})
	series := `portcullis_decisions_total{decision="deny",front="grpc",reason="invalid_token"}`
	if got := metricAt(t, adminURL, series); got != 2 {
		t.Errorf("%s = %v, want 2", series, got)
	}
}

// mtlsEnvoy is an Envoy listener terminating mutual TLS (client certificates required, signed by
// the test CA) with ext_authz passing the peer certificate to Portcullis.
const mtlsEnvoy = `
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: %d } }
static_resources:
  listeners:
    - name: mtls
      address: { socket_address: { address: 127.0.0.1, port_value: %d } }
      filter_chains:
        - transport_socket:
            name: envoy.transport_sockets.tls
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
              require_client_certificate: true
              common_tls_context:
                tls_certificates:
                  - certificate_chain: { filename: %q }
                    private_key: { filename: %q }
                validation_context:
                  trusted_ca: { filename: %q }
          filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: mtls
                route_config:
                  virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
                        - match: { prefix: / }
                          route: { cluster: upstream, timeout: 15s }
                http_filters:
                  - name: envoy.filters.http.ext_authz
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
                      transport_api_version: V3
                      grpc_service: { envoy_grpc: { cluster_name: portcullis }, timeout: 0.5s }
                      failure_mode_allow: false
                      include_peer_certificate: true
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: portcullis
      type: STATIC
      connect_timeout: 1s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: { http2_protocol_options: {} }
      load_assignment:
        cluster_name: portcullis
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: %d } } } }] }]
    - name: upstream
      type: STATIC
      connect_timeout: 1s
      load_assignment:
        cluster_name: upstream
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: %d } } } }] }]
`

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "portcullis e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, k
}

func issueCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, server bool) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP(name)}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, k
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeKey(t *testing.T, path string, k *ecdsa.PrivateKey) {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, path, "EC PRIVATE KEY", der)
}
