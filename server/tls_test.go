package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/portcullis-authz/portcullis/internal/devidp"
	"github.com/portcullis-authz/portcullis/internal/testpki"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client certificate.
type testPKI struct {
	dir    string
	pool   *x509.CertPool
	client tls.Certificate
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	ca := testpki.New(t, "test CA")
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.Cert.Raw)
	srv := ca.Issue(t, "portcullis", x509.ExtKeyUsageServerAuth, "127.0.0.1")
	writePEM(t, filepath.Join(dir, "server.pem"), "CERTIFICATE", srv.Certificate[0])
	k, err := x509.MarshalECPrivateKey(srv.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "server-key.pem"), "EC PRIVATE KEY", k)
	return &testPKI{dir: dir, pool: ca.Pool, client: ca.Issue(t, "envoy", x509.ExtKeyUsageClientAuth)}
}

// TestMutualTLS: with client_ca_file set, a client with a certificate from that CA is served
// and a client without one is refused at the handshake.
func TestMutualTLS(t *testing.T) {
	pki := newPKI(t)
	idp, _ := devidp.New()
	idp.SetIssuer("https://sso.example.com/realms/demo")
	if err := os.WriteFile(filepath.Join(pki.dir, "keys.json"), idp.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`
server:
  grpc_addr: "127.0.0.1:0"
  http_addr: ""
  admin_addr: ""
  tls: { cert_file: server.pem, key_file: server-key.pem, client_ca_file: ca.pem }
issuers:
  - issuer: %q
    jwks_file: keys.json
    audiences: [orders-api]
rules:
  - name: health
    match: { paths: ["/healthz"] }
    public: true
`, idp.Issuer())
	path := filepath.Join(pki.dir, "portcullis.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := runServer(t, path)

	call := func(certs []tls.Certificate) error {
		return checkHealthz(srv, credentials.NewTLS(&tls.Config{RootCAs: pki.pool, Certificates: certs, MinVersion: tls.VersionTLS12}))
	}
	if err := call([]tls.Certificate{pki.client}); err != nil {
		t.Errorf("client with a certificate: %v", err)
	}
	if err := call(nil); err == nil {
		t.Error("a client without a certificate was served")
	}
}

// checkHealthz asks the server's gRPC listener, with creds, about GET /healthz (public in the
// test configurations) and fails unless it is allowed.
func checkHealthz(srv *Server, creds credentials.TransportCredentials) error {
	conn, err := grpc.NewClient(srv.Addr("grpc").String(), grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, checkRequest("GET", "h", "/healthz", nil))
	if err == nil && resp.GetOkResponse() == nil {
		return fmt.Errorf("not allowed: %v", resp)
	}
	return err
}
