package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLoadBadIntrospection loads one fixture per introspection rule and asserts the exact message.
func TestLoadBadIntrospection(t *testing.T) {
	cases := []struct{ file, want string }{
		{"inline_secret", "issuers[0].introspection.client_secret: a secret is never written in the configuration; put it in a file (mode 0600, a Kubernetes Secret) and name it in client_secret_file"},
		{"no_client_id", "issuers[0].introspection.client_id: must be set to the id of a confidential client allowed to introspect, e.g. portcullis"},
		{"no_secret_file", "issuers[0].introspection.client_secret_file: must name the file holding the client secret, e.g. /etc/portcullis/introspection-secret"},
		{"secret_missing", `issuers[0].introspection.client_secret_file: cannot read "testdata/files/missing-secret": no such file or directory`},
		{"secret_empty", `issuers[0].introspection.client_secret_file: "testdata/files/empty-secret" is empty; write the client secret in it`},
		{"plain_http", `issuers[0].introspection.endpoint: "http://sso.example.com/realms/demo/protocol/openid-connect/token/introspect" is plain http on a host other than loopback; the token and the client secret would travel unencrypted (use https)`},
		{"timeout_zero", "issuers[0].introspection.timeout: must be positive, e.g. 2s"},
		{"opaque_twice", "issuers[1].introspection.opaque_tokens: issuers[0] (https://sso.example.com/realms/demo) accepts opaque tokens already; at most one issuer may, as an opaque token does not say who issued it and must never be sent to an issuer that did not"},
		{"template", "issuers[0].introspection: a {tenantid} template issuer cannot introspect (its tokens come from many tenants); remove introspection"},
		{"active_without_introspection", "rules[0].require.active: no issuer has introspection, so no token could pass; configure issuers[].introspection"},
		{"cache_negative", "cache.introspection: -1 is negative; use 0 to turn the introspection cache off"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.file+".yaml"] = true
		t.Run(c.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", "bad_introspection", c.file+".yaml"))
			if err == nil {
				t.Fatal("loaded without error")
			}
			if want := "config: " + c.want; err.Error() != want {
				t.Errorf("error\n got: %s\nwant: %s", err, want)
			}
		})
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "bad_introspection", "*.yaml"))
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("fixture %s has no expected message", f)
		}
	}
}

// TestIntrospectionLoads: the example loads with its defaults; the secret is read from
// its file and never prints; a require.active rule warns about an issuer without introspection.
func TestIntrospectionLoads(t *testing.T) {
	l, err := Parse([]byte(`
issuers:
  - issuer: "https://sso.example.com/realms/demo"
    audiences: [orders-api]
    introspection:
      client_id: portcullis
      client_secret_file: `+filepath.Join("testdata", "files", "introspection-secret")+`
      opaque_tokens: true
  - issuer: "https://other.example.com"
    audiences: [orders-api]
    introspection:
      endpoint: "http://127.0.0.1:8080/introspect"
      client_id: portcullis
      client_secret_file: `+filepath.Join("testdata", "files", "introspection-secret")+`
      cache_ttl: 0s
      negative_cache_ttl: 1s
      timeout: 500ms
  - issuer: "https://third.example.com"
    audiences: [orders-api]
rules:
  - name: payments
    match: { paths: ["/api/payments/**"] }
    require: { active: true }
`), ".")
	if err != nil {
		t.Fatal(err)
	}
	a, b := l.Issuers[0].Introspection, l.Issuers[1].Introspection
	if got := fmt.Sprint(a.CacheTTL, a.NegativeCacheTTL, a.Timeout, a.OpaqueTokens, b.CacheTTL, b.NegativeCacheTTL, b.Timeout, b.OpaqueTokens, l.Cache.Introspection); got != "1m0s 10s 2s true 0s 1s 500ms false 10000" {
		t.Errorf("loaded %s", got)
	}
	if a.CacheTTL != time.Minute || l.IssuerFiles[0].IntrospectionSecret.Reveal() != "portcullis-test-secret" || l.IssuerFiles[2].IntrospectionSecret != "" {
		t.Errorf("secret not read")
	}
	if s := fmt.Sprintf("%v %s %#v %+v", l.IssuerFiles[0].IntrospectionSecret, l.IssuerFiles[0].IntrospectionSecret, l.IssuerFiles[0].IntrospectionSecret, l.IssuerFiles[0]); strings.Contains(s, "portcullis-test-secret") {
		t.Errorf("the secret prints: %s", s)
	}
	want := []string{`rules[0].require.active: issuers[2] (https://third.example.com) has no introspection, so its tokens are refused (403) on rule "payments"`}
	if !slices.Equal(l.Warnings, want) {
		t.Errorf("warnings\n got: %q\nwant: %q", l.Warnings, want)
	}
}
