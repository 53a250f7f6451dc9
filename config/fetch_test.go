package config

import (
	"path/filepath"
	"testing"
)

// TestIssuerFetchSettings: a client certificate and a proxy are read once at load, relative to
// the configuration file, into IssuerFiles; an issuer without them has neither.
func TestIssuerFetchSettings(t *testing.T) {
	l, err := Parse([]byte(`
issuers:
  - issuer: https://sso.example.com/realms/demo
    audiences: [orders-api]
    client_cert_file: test-server.pem
    client_key_file: test-server-key.pem
    proxy_url: http://proxy.example.com:3128
  - issuer: https://other.example.com
    audiences: [orders-api]
rules:
  - name: api
    match: { paths: ["/api/**"] }
`), filepath.Join("testdata", "files"))
	if err != nil {
		t.Fatal(err)
	}
	is, files := l.Issuers[0], l.IssuerFiles[0]
	if is.ClientCertFile != filepath.Join("testdata", "files", "test-server.pem") || is.ClientKeyFile != filepath.Join("testdata", "files", "test-server-key.pem") {
		t.Errorf("paths %q %q", is.ClientCertFile, is.ClientKeyFile)
	}
	if files.ClientCert == nil || len(files.ClientCert.Certificate) != 1 || len(files.ClientCertDigest) != 64 {
		t.Errorf("client certificate %v digest %q", files.ClientCert, files.ClientCertDigest)
	}
	if files.Proxy == nil || files.Proxy.String() != "http://proxy.example.com:3128" {
		t.Errorf("proxy %v", files.Proxy)
	}
	if other := l.IssuerFiles[1]; other.ClientCert != nil || other.ClientCertDigest != "" || other.Proxy != nil {
		t.Errorf("issuers[1] files %+v", other)
	}
}

// TestFetchSettingsServeIntrospection: an issuer whose keys come from a jwks_file may still set
// a proxy and a client certificate when it introspects: they serve the introspection calls.
func TestFetchSettingsServeIntrospection(t *testing.T) {
	l, err := Parse([]byte(`
issuers:
  - issuer: https://sso.example.com/realms/demo
    audiences: [orders-api]
    jwks_file: keys.json
    algorithms: [ES256]
    client_cert_file: test-server.pem
    client_key_file: test-server-key.pem
    proxy_url: http://proxy.example.com:3128
    introspection:
      endpoint: https://sso.example.com/realms/demo/protocol/openid-connect/token/introspect
      client_id: orders-api
      client_secret_file: introspection-secret
rules:
  - name: api
    match: { paths: ["/api/**"] }
    require: { active: true }
`), filepath.Join("testdata", "files"))
	if err != nil {
		t.Fatal(err)
	}
	if files := l.IssuerFiles[0]; files.ClientCert == nil || files.Proxy == nil {
		t.Errorf("files %+v: want the client certificate and the proxy read", files)
	}
}
