package policytest

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/portcullis-authz/portcullis/authz"
	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/internal/devidp"
)

// TestBuildRequest: the request handed to the engine, with the token in the first configured
// source, as `portcullis check` places it.
func TestBuildRequest(t *testing.T) {
	load := func(sources string) *config.Loaded {
		t.Helper()
		cfg, err := config.Parse([]byte(`
issuers: [{ issuer: "https://sso.invalid", audiences: [api] }]
tokens: { sources: `+sources+` }
rules: [{ name: any }]
`), "")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	header := load(`[{ header: X-Token, prefix: "Token " }, { cookie: at }]`)
	cookie := load(`[{ cookie: at }, { header: authorization, prefix: "Bearer " }]`)
	cases := []struct {
		name string
		cfg  *config.Loaded
		req  Request
		tok  string
		want authz.Request
	}{
		{"defaults, no token", header, Request{Path: "/x"}, "",
			authz.Request{Method: "GET", Path: "/x", Headers: map[string]string{}}},
		{"method upper-cased, host, header names lower-cased", header,
			Request{Method: "post", Host: "API.example.com:8443", Path: "/x?q=1", Headers: map[string]string{"X-Tenant": "acme"}}, "",
			authz.Request{Method: "POST", Host: "API.example.com:8443", Path: "/x?q=1",
				Headers: map[string]string{"x-tenant": "acme", "host": "API.example.com:8443"}}},
		{"token in the first source, a header with its prefix", header, Request{Path: "/x"}, "T",
			authz.Request{Method: "GET", Path: "/x", Headers: map[string]string{"x-token": "Token T"}}},
		{"token in the first source, a cookie", cookie, Request{Path: "/x"}, "T",
			authz.Request{Method: "GET", Path: "/x", Headers: map[string]string{"cookie": "at=T"}}},
		{"the request's cookies are kept", cookie, Request{Path: "/x", Headers: map[string]string{"Cookie": "theme=dark"}}, "T",
			authz.Request{Method: "GET", Path: "/x", Headers: map[string]string{"cookie": "theme=dark; at=T"}}},
		{"source address and context extensions, as the gRPC front reads them", header,
			Request{Path: "/x", Source: "10.1.2.3", Context: map[string]string{"portcullis-zone": "internal"}}, "",
			authz.Request{Method: "GET", Path: "/x", Headers: map[string]string{}, SourceAddress: "10.1.2.3",
				Context: map[string]string{"portcullis-zone": "internal"}}},
		{"a portcullis-rule context extension names the rule", header,
			Request{Path: "/x", Context: map[string]string{"portcullis-rule": "any", "k": "v"}}, "",
			authz.Request{Method: "GET", Path: "/x", Headers: map[string]string{}, RuleName: "any",
				Context: map[string]string{"portcullis-rule": "any", "k": "v"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := buildRequest(c.cfg, &c.req, c.tok); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %#v\nwant %#v", got, c.want)
			}
		})
	}
}

// TestMint: iss, aud (the issuer's first audience), iat and exp (now + 1 h) are filled in
// unless the claims give them; a claim given as null is left out; the token is signed with the
// issuer's first allowed algorithm.
func TestMint(t *testing.T) {
	cfg, err := config.Parse([]byte(`
issuers: [{ issuer: "https://sso.invalid/", audiences: [first, second], algorithms: [ES384, RS256] }]
rules: [{ name: any }]
`), "")
	if err != nil {
		t.Fatal(err)
	}
	idp, err := devidp.NewFor(jwa.ES384)
	if err != nil {
		t.Fatal(err)
	}
	idps := map[string]*devidp.IdP{"https://sso.invalid/": idp}
	now := time.Unix(1_800_000_000, 0)
	cases := []struct {
		name   string
		claims map[string]any
		want   map[string]any
	}{
		{"filled in", map[string]any{"sub": "a"},
			map[string]any{"iss": "https://sso.invalid/", "aud": "first", "iat": 1_800_000_000.0, "exp": 1_800_003_600.0, "sub": "a"}},
		{"given", map[string]any{"iss": "https://other.invalid", "aud": []any{"second"}, "iat": 1, "exp": 2},
			map[string]any{"iss": "https://other.invalid", "aud": []any{"second"}, "iat": 1.0, "exp": 2.0}},
		{"null left out", map[string]any{"aud": nil, "exp": nil, "iat": nil},
			map[string]any{"iss": "https://sso.invalid/"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := mint(cfg, idps, &Token{Issuer: "https://sso.invalid/", Claims: c.claims}, now)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := jws.Parse([]byte(tok))
			if err != nil {
				t.Fatal(err)
			}
			if alg := msg.Signatures()[0].ProtectedHeaders().Algorithm(); alg != jwa.ES384 {
				t.Errorf("alg %s, want ES384", alg)
			}
			var got map[string]any
			if err := json.Unmarshal(msg.Payload(), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("claims %v, want %v", got, c.want)
			}
		})
	}
}
