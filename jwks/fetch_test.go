package jwks

import (
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// newTLSTestIdP serves the test IdP over https and returns a client trusting it through a CA
// bundle, as the configuration reads a ca_file (Roots) and the server builds the client.
func newTLSTestIdP(t *testing.T, body []byte) (*testIdP, *http.Client) {
	t.Helper()
	idp := newTestIdPServer(t, body, httptest.NewTLSServer)
	roots, err := Roots(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.srv.Certificate().Raw}))
	if err != nil {
		t.Fatal(err)
	}
	return idp, NewClient(ClientOptions{Roots: roots, Timeout: 5 * time.Second})
}

func TestNewClient(t *testing.T) {
	idp, client := newTLSTestIdP(t, setOf(t, "rsa1"))
	resp, err := client.Get(idp.URL() + "/jwks")
	if err != nil {
		t.Fatalf("with the CA bundle: %v", err)
	}
	resp.Body.Close()

	plain := NewClient(ClientOptions{})
	if _, err := plain.Get(idp.URL() + "/jwks"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA bundle: %v", err)
	}
	tr := plain.Transport.(*http.Transport)
	if plain.Timeout != 10*time.Second || tr.TLSClientConfig.MinVersion != tls.VersionTLS12 || tr.TLSHandshakeTimeout != 5*time.Second || tr.ResponseHeaderTimeout != 10*time.Second {
		t.Errorf("client timeout %s, TLS min %x, handshake %s, headers %s", plain.Timeout, tr.TLSClientConfig.MinVersion, tr.TLSHandshakeTimeout, tr.ResponseHeaderTimeout)
	}
}

// TestRoots: a CA bundle without a PEM certificate is refused (config's ca_file_no_certificate
// fixture shows the message a user reads).
func TestRoots(t *testing.T) {
	if _, err := Roots([]byte("not a certificate")); err == nil || err.Error() != "holds no PEM certificate" {
		t.Errorf("Roots(not PEM) = %v", err)
	}
}

func TestRedirects(t *testing.T) {
	idp, client := newTLSTestIdP(t, setOf(t, "rsa1"))
	plain := newTestIdP(t, setOf(t, "rsa1"))
	redirect := httptest.NewUnstartedServer(http.RedirectHandler(plain.URL()+"/jwks", http.StatusFound))
	redirect.TLS = idp.srv.TLS
	redirect.StartTLS()
	t.Cleanup(redirect.Close)
	_, err := client.Get(redirect.URL)
	if err == nil || !strings.Contains(err.Error(), "refusing redirect from https to "+plain.URL()+"/jwks") {
		t.Errorf("https to http redirect: %v", err)
	}

	req, _ := http.NewRequest(http.MethodGet, "https://a/b", nil)
	via := make([]*http.Request, maxRedirects)
	for i := range via {
		via[i] = req
	}
	if err := checkRedirect(req, via); err == nil {
		t.Error("sixth redirect followed")
	}
	if err := checkRedirect(req, via[:1]); err != nil {
		t.Errorf("https to https: %v", err)
	}
}

func TestCheckFetchURL(t *testing.T) {
	tests := []struct {
		url       string
		allowHTTP bool
		ok        bool
	}{
		{"https://sso.example.com/certs", false, true},
		{"http://127.0.0.1:8080/certs", false, true},
		{"http://[::1]:8080/certs", false, true},
		{"http://localhost/certs", false, true},
		{"http://keycloak.svc:8080/certs", false, false},
		{"http://keycloak.svc:8080/certs", true, true},
		{"ftp://sso.example.com/certs", true, false},
		{"/certs", true, false},
		{"https:///certs", true, false},
	}
	for _, tc := range tests {
		if err := checkFetchURL(tc.url, tc.allowHTTP); (err == nil) != tc.ok {
			t.Errorf("checkFetchURL(%q, %v) = %v", tc.url, tc.allowHTTP, err)
		}
	}
}

func TestFreshness(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		h    http.Header
		want time.Duration
	}{
		{"none", http.Header{}, 0},
		{"max-age", http.Header{"Cache-Control": {"max-age=120"}}, 2 * time.Minute},
		{"quoted, upper case", http.Header{"Cache-Control": {`MAX-AGE="90"`}}, 90 * time.Second},
		{"several lines", http.Header{"Cache-Control": {"public", "max-age=30"}}, 30 * time.Second},
		{"no-cache on another line", http.Header{"Cache-Control": {"max-age=30", "no-cache"}}, 0},
		{"garbage", http.Header{"Cache-Control": {"max-age=soon"}}, 0},
		{"negative", http.Header{"Cache-Control": {"max-age=-5"}}, 0},
		{"huge", http.Header{"Cache-Control": {"max-age=99999999999999"}}, maxGuidance},
		{"Age", http.Header{"Cache-Control": {"max-age=120"}, "Age": {"20"}}, 100 * time.Second},
		{"Age beyond", http.Header{"Cache-Control": {"max-age=120"}, "Age": {"200"}}, time.Nanosecond},
		{"Expires without Date", http.Header{"Expires": {"Sun, 01 Mar 2026 12:05:00 GMT"}}, 5 * time.Minute},
		{"Expires with Date", http.Header{"Expires": {"Sun, 01 Mar 2026 12:05:00 GMT"}, "Date": {"Sun, 01 Mar 2026 12:04:00 GMT"}}, time.Minute},
		{"max-age beats Expires", http.Header{"Cache-Control": {"max-age=60"}, "Expires": {"Sun, 01 Mar 2026 13:00:00 GMT"}}, time.Minute},
		{"Expires invalid", http.Header{"Expires": {"-1"}}, 0},
	}
	for _, tc := range tests {
		if got := freshness(tc.h, now); got != tc.want {
			t.Errorf("%s: freshness = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestDiscoveryURL(t *testing.T) {
	for issuer, want := range map[string]string{
		"https://sso.example.com/realms/demo":  "https://sso.example.com/realms/demo/.well-known/openid-configuration",
		"https://sso.example.com/realms/demo/": "https://sso.example.com/realms/demo/.well-known/openid-configuration",
		"https://accounts.example.com":         "https://accounts.example.com/.well-known/openid-configuration",
	} {
		if got := discoveryURL(issuer); got != want {
			t.Errorf("discoveryURL(%q) = %q", issuer, got)
		}
	}
}

// Errors name URLs without their credentials.
func TestErrorsRedactURLs(t *testing.T) {
	idp := newTestIdP(t, setOf(t, "rsa1"))
	idp.set(func(p *testIdP) { p.status = http.StatusUnauthorized })
	u, _ := url.Parse(idp.URL() + "/jwks")
	u.User = url.UserPassword("portcullis", "s3cret")
	h := startHarness(t, idp, func(o *Options) { o.JWKSURI = u.String() })
	st := h.cache.Status()
	if strings.Contains(st.LastError+st.JWKSURI+h.logs.String(), "s3cret") {
		t.Errorf("password leaked: %s", st.LastError)
	}
	contains(t, "LastError", st.LastError, "HTTP 401")
}
