package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/portcullis-authz/portcullis/authz"
	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/internal/devidp"
	"github.com/portcullis-authz/portcullis/reason"
)

// Tenants, clients and users of the provider fixtures (made-up ids in each provider's shape).
const (
	entraTenant      = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
	entraOtherTenant = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
	entraForeign     = "11111111-2222-4333-8444-555555555555" // a tenant the configuration does not list
	entraAPI         = "6e74172b-be56-4843-9ff4-e66a39bb12e3" // the API's client id (v2 aud)
	entraClient      = "1950a258-227b-4e31-a9cf-717495945fc2" // the calling app (azp / appid)
	cognitoPool      = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf"
	cognitoClient    = "5abc7defg8hij9klm0nop1qrst"
)

// providerFixture is one identity provider: a configuration as the README's "Identity
// providers" section writes it (keys from jwks_file instead of jwks_uri, so the test makes no
// network call), and token-shaped claims from the provider's documented access tokens.
type providerFixture struct {
	name   string
	config string // the issuers and identity_headers; keys.json holds the keys
	cases  []providerCase
}

type providerCase struct {
	name    string
	path    string
	claims  devidp.Claims
	status  int
	reason  reason.Code
	headers string // the identity headers set, on an allow
	tenant  string // the tenant the decision log names ("" = none)
}

const providerRules = `
rules:
  - name: admin
    match: { paths: ["/admin/**"] }
    require: { any_roles: [admin] }
  - name: api
    match: { paths: ["/api/**"] }
`

func entraV2Claims(tenant string, extra devidp.Claims) devidp.Claims {
	c := devidp.Claims{
		"iss": "https://login.microsoftonline.com/" + tenant + "/v2.0", "tid": tenant, "ver": "2.0",
		"aud": entraAPI, "azp": entraClient, "azpacr": "0",
		"sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "oid": "00000000-0000-0000-66f3-3332eca7ea81",
		"preferred_username": "alice@contoso.example", "name": "Alice", "scp": "orders.read", "roles": []string{"admin"},
		"nbf": time.Now().Add(-time.Minute).Unix(), "uti": "fqiBqXLPj0eQa82S-IYFAA", "rh": "0.AAAA",
	}
	return merge(c, extra)
}

func entraV1Claims(extra devidp.Claims) devidp.Claims {
	c := devidp.Claims{
		"iss": "https://sts.windows.net/" + entraTenant + "/", "tid": entraTenant, "ver": "1.0",
		"aud": "api://orders", "appid": entraClient, "appidacr": "0",
		"sub": "l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA", "oid": "00000000-0000-0000-66f3-3332eca7ea81",
		"upn": "alice@contoso.example", "unique_name": "alice@contoso.example", "scp": "orders.read", "roles": []string{"admin"},
	}
	return merge(c, extra)
}

func cognitoClaims(extra devidp.Claims) devidp.Claims {
	c := devidp.Claims{
		"iss": cognitoPool, "sub": "aaaaaaaa-bbbb-cccc-dddd-example", "client_id": cognitoClient,
		"token_use": "access", "scope": "aws.cognito.signin.user.admin orders/read", "username": "alice",
		"cognito:groups": []string{"admin"}, "version": 2, "auth_time": time.Now().Unix(),
		"origin_jti": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "event_id": "cccccccc-dddd-eeee-ffff-aaaaaaaaaaaa", "jti": "aaaaaaaa-1111",
	}
	return merge(c, extra)
}

func googleClaims(extra devidp.Claims) devidp.Claims {
	c := devidp.Claims{
		"iss": "https://accounts.google.com", "azp": "1234987819200.apps.googleusercontent.com",
		"aud": "1234987819200.apps.googleusercontent.com", "sub": "10769150350006150715113082367",
		"email": "alice@example.com", "email_verified": true, "hd": "example.com", "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q",
	}
	return merge(c, extra)
}

func merge(c, extra devidp.Claims) devidp.Claims {
	for k, v := range extra {
		c[k] = v // nil deletes (devidp.Mint)
	}
	return c
}

var providerFixtures = []providerFixture{
	{
		name: "Entra ID v2, multi-tenant",
		config: `
issuers:
  - issuer: "https://login.microsoftonline.com/{tenantid}/v2.0"
    jwks_file: keys.json
    tenants: ["` + entraTenant + `", "` + entraOtherTenant + `"]
    audiences: ["` + entraAPI + `"]
    roles_claims: [roles]
identity_headers:
  x-user-id: oid
  x-user-name: preferred_username
  x-user-tenant: tid
  x-user-roles: roles
`,
		cases: []providerCase{
			{name: "listed tenant with the role", path: "/admin/x", claims: entraV2Claims(entraTenant, nil), status: 200, reason: reason.OK,
				headers: "[{x-user-id 00000000-0000-0000-66f3-3332eca7ea81} {x-user-name alice@contoso.example} {x-user-roles admin} {x-user-tenant " + entraTenant + "}]", tenant: entraTenant},
			{name: "second listed tenant", path: "/admin/x", claims: entraV2Claims(entraOtherTenant, nil), status: 200, reason: reason.OK,
				headers: "[{x-user-id 00000000-0000-0000-66f3-3332eca7ea81} {x-user-name alice@contoso.example} {x-user-roles admin} {x-user-tenant " + entraOtherTenant + "}]", tenant: entraOtherTenant},
			{name: "without the role", path: "/admin/x", claims: entraV2Claims(entraTenant, devidp.Claims{"roles": []string{"reader"}}), status: 403, reason: reason.Forbidden, tenant: entraTenant},
			{name: "another audience", path: "/api/x", claims: entraV2Claims(entraTenant, devidp.Claims{"aud": "00000003-0000-0000-c000-000000000000"}), status: 401, reason: reason.WrongAudience},
			{name: "a tenant not listed", path: "/api/x", claims: entraV2Claims(entraForeign, nil), status: 401, reason: reason.UnknownIssuer},
			{name: "cross-tenant: a foreign tenant's token with a listed tenant's iss", path: "/api/x",
				claims: entraV2Claims(entraTenant, devidp.Claims{"tid": entraForeign}), status: 401, reason: reason.InvalidToken},
		},
	},
	{
		name: "Entra ID v1 and v2 of one tenant",
		config: `
issuers:
  - issuer: "https://login.microsoftonline.com/` + entraTenant + `/v2.0"
    issuer_aliases: ["https://sts.windows.net/` + entraTenant + `/"]
    jwks_file: keys.json
    audiences: ["api://orders", "` + entraAPI + `"]
    authorized_parties: ["` + entraClient + `"]
    authorized_party_claims: [azp, appid]
    roles_claims: [roles]
identity_headers:
  x-user-id: oid
  x-user-roles: roles
`,
		cases: []providerCase{
			{name: "v2 token", path: "/admin/x", claims: entraV2Claims(entraTenant, nil), status: 200, reason: reason.OK,
				headers: "[{x-user-id 00000000-0000-0000-66f3-3332eca7ea81} {x-user-roles admin}]"},
			{name: "v1 token (sts.windows.net, appid)", path: "/admin/x", claims: entraV1Claims(nil), status: 200, reason: reason.OK,
				headers: "[{x-user-id 00000000-0000-0000-66f3-3332eca7ea81} {x-user-roles admin}]"},
			{name: "v1 token without the role", path: "/admin/x", claims: entraV1Claims(devidp.Claims{"roles": nil}), status: 403, reason: reason.Forbidden},
			{name: "v1 token of another app", path: "/api/x", claims: entraV1Claims(devidp.Claims{"appid": "00000000-aaaa-4bbb-8ccc-000000000000"}), status: 401, reason: reason.InvalidToken},
			{name: "v1 token for another audience", path: "/api/x", claims: entraV1Claims(devidp.Claims{"aud": "https://graph.microsoft.com"}), status: 401, reason: reason.WrongAudience},
			{name: "v1 token of another tenant", path: "/api/x", claims: entraV1Claims(devidp.Claims{"iss": "https://sts.windows.net/" + entraForeign + "/", "tid": entraForeign}), status: 401, reason: reason.UnknownIssuer},
		},
	},
	{
		name: "AWS Cognito access token",
		config: `
issuers:
  - issuer: "` + cognitoPool + `"
    jwks_file: keys.json
    audiences: ["` + cognitoClient + `"]
    audience_claims: [aud, client_id]
    roles_claims: ["cognito:groups"]
identity_headers:
  x-user-id: sub
  x-user-name: username
  x-user-roles: roles
`,
		cases: []providerCase{
			{name: "in the admin group", path: "/admin/x", claims: cognitoClaims(nil), status: 200, reason: reason.OK,
				headers: "[{x-user-id aaaaaaaa-bbbb-cccc-dddd-example} {x-user-name alice} {x-user-roles admin}]"},
			{name: "without the group", path: "/admin/x", claims: cognitoClaims(devidp.Claims{"cognito:groups": nil}), status: 403, reason: reason.Forbidden},
			{name: "another app client", path: "/api/x", claims: cognitoClaims(devidp.Claims{"client_id": "7otherclient"}), status: 401, reason: reason.WrongAudience},
			{name: "the ID token (aud is the client id)", path: "/api/x",
				claims: cognitoClaims(devidp.Claims{"token_use": "id", "aud": cognitoClient, "client_id": nil, "email": "alice@example.com"}), status: 401, reason: reason.InvalidToken},
		},
	},
	{
		name: "Google ID token, both iss spellings",
		config: `
issuers:
  - issuer: "https://accounts.google.com"
    issuer_aliases: ["accounts.google.com"]
    jwks_file: keys.json
    audiences: ["1234987819200.apps.googleusercontent.com"]
identity_headers:
  x-user-id: sub
  x-user-email: email
`,
		cases: []providerCase{
			{name: "https issuer", path: "/api/x", claims: googleClaims(nil), status: 200, reason: reason.OK,
				headers: "[{x-user-email alice@example.com} {x-user-id 10769150350006150715113082367}]"},
			{name: "legacy issuer without scheme", path: "/api/x", claims: googleClaims(devidp.Claims{"iss": "accounts.google.com"}), status: 200, reason: reason.OK,
				headers: "[{x-user-email alice@example.com} {x-user-id 10769150350006150715113082367}]"},
			{name: "no role for the admin rule", path: "/admin/x", claims: googleClaims(nil), status: 403, reason: reason.Forbidden},
			{name: "another audience", path: "/api/x", claims: googleClaims(devidp.Claims{"aud": "99.apps.googleusercontent.com"}), status: 401, reason: reason.WrongAudience},
		},
	},
}

// TestProviders: for each identity provider, its configuration loads, its access tokens are
// allowed with the right role and refused without it, for another audience or another tenant;
// the identity headers are set, and the decision log names the tenant of a template.
func TestProviders(t *testing.T) {
	for _, p := range providerFixtures {
		t.Run(p.name, func(t *testing.T) {
			dir := t.TempDir()
			idp, err := devidp.New()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "keys.json"), idp.JWKS(), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse([]byte(p.config+providerRules), dir)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			engine, stop, err := OneShot(ctx, cfg, nil)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(stop)
			var logs bytes.Buffer
			a := authz.NewAuthorizer(engine, nil, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			for _, c := range p.cases {
				t.Run(c.name, func(t *testing.T) {
					tok, err := idp.Mint(jwa.RS256, c.claims, 5*time.Minute)
					if err != nil {
						t.Fatal(err)
					}
					logs.Reset()
					d := a.Authorize(context.Background(), authz.FrontGRPC, &authz.Request{Method: "GET", Host: "api.example.com", Path: c.path,
						Headers: map[string]string{"authorization": "Bearer " + tok}})
					if d.Status != c.status || d.Reason != c.reason {
						t.Fatalf("%d %s (%s), want %d %s", d.Status, d.Reason, d.Detail, c.status, c.reason)
					}
					if d.Allow {
						if got := fmt.Sprint(d.Upstream); got != c.headers {
							t.Errorf("identity headers %s\nwant %s", got, c.headers)
						}
					}
					var rec map[string]any
					if err := json.Unmarshal(logs.Bytes(), &rec); err != nil {
						t.Fatalf("decision log %q: %v", logs.String(), err)
					}
					if got, _ := rec["tenant"].(string); got != c.tenant {
						t.Errorf("decision log tenant %q, want %q", got, c.tenant)
					}
					if strings.Contains(logs.String(), tok[len(tok)-20:]) {
						t.Error("the log holds the token")
					}
				})
			}
		})
	}
}

// TestTemplateKeysFromJWKSURI: a template issuer's keys are fetched from its jwks_uri, once,
// with no discovery (a template has no discovery document), and serve every tenant.
func TestTemplateKeysFromJWKSURI(t *testing.T) {
	idp, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		idp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cfg, err := config.Parse([]byte(`
issuers:
  - issuer: "https://login.microsoftonline.com/{tenantid}/v2.0"
    jwks_uri: "`+srv.URL+`/common/discovery/v2.0/jwks"
    tenants: ["`+entraTenant+`", "`+entraOtherTenant+`"]
    audiences: ["`+entraAPI+`"]
    roles_claims: [roles]
`+providerRules), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	engine, stop, err := OneShot(ctx, cfg, nil)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	for _, tenant := range []string{entraTenant, entraOtherTenant} {
		tok, err := idp.Mint(jwa.RS256, entraV2Claims(tenant, nil), 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if d := decideAPI(engine, tok); !d.Allow {
			t.Errorf("tenant %s: %d %s %s", tenant, d.Status, d.Reason, d.Detail)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(paths) != "[/common/discovery/v2.0/jwks]" {
		t.Errorf("requests %v, want the jwks_uri once", paths)
	}
}
