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
	rules  string // the rules; providerRules when empty
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

// Issuers, clients and users of the other provider fixtures.
const (
	keycloakRealm = "https://sso.example.com/realms/shop"
	keycloakUser  = "5f1c2a7e-3b4d-4e8f-9a0b-1c2d3e4f5a6b"
	auth0Tenant   = "https://example.eu.auth0.com/"
	auth0API      = "https://orders.example.com" // the API's identifier
	auth0Client   = "Zx8Qh3LmP0vR7tY2nB5cK9dW4sF6gJ1a"
	oktaAS        = "https://dev-123456.okta.com/oauth2/default"
	oktaClient    = "0oa5e3bx7kQbG9Hc45d7"
	k8sIssuer     = "https://kubernetes.default.svc.cluster.local"
	githubIssuer  = "https://token.actions.githubusercontent.com"
)

// keycloakClaims: a Keycloak access token of a user of the shop realm, issued to the
// orders-web client, with orders-api added to aud by an audience mapper.
func keycloakClaims(extra devidp.Claims) devidp.Claims {
	c := devidp.Claims{
		"iss": keycloakRealm, "aud": []string{"orders-api", "account"}, "sub": keycloakUser, "typ": "Bearer",
		"azp": "orders-web", "sid": "8d7a6b5c-4e3f-4a1b-9c8d-7e6f5a4b3c2d", "acr": "1", "jti": "onrtac:1b2c3d4e",
		"auth_time": time.Now().Unix(), "allowed-origins": []string{"https://shop.example.com"},
		"realm_access": map[string]any{"roles": []string{"default-roles-shop", "offline_access", "uma_authorization", "admin"}},
		"resource_access": map[string]any{
			"orders-api": map[string]any{"roles": []string{"writer"}},
			"account":    map[string]any{"roles": []string{"manage-account", "view-profile"}},
		},
		"scope": "openid email profile", "email_verified": true, "name": "Alice Example",
		"preferred_username": "alice", "given_name": "Alice", "family_name": "Example", "email": "alice@example.com",
	}
	return merge(c, extra)
}

// auth0Claims: an Auth0 access token for the orders API (the "Auth0" token profile), with
// RBAC's permissions and a namespaced roles claim set by a post-login Action.
func auth0Claims(extra devidp.Claims) devidp.Claims {
	c := devidp.Claims{
		"iss": auth0Tenant, "sub": "auth0|64b7f0c2a1e3d4f5a6b7c8d9",
		"aud": []string{auth0API, "https://example.eu.auth0.com/userinfo"}, "azp": auth0Client,
		"scope": "openid profile email read:orders", "permissions": []string{"read:orders", "delete:orders"},
		"https://example.com/roles": []string{"admin"}, "https://example.com/email": "alice@example.com",
	}
	return merge(c, extra)
}

// oktaClaims: an access token of an Okta custom authorization server ("default"), with a
// groups claim added to the server.
func oktaClaims(extra devidp.Claims) devidp.Claims {
	c := devidp.Claims{
		"ver": 1, "jti": "AT.mW2xZk9q1vY7bN4cR0tH8sL3pD6fJ5gA", "iss": oktaAS, "aud": "api://default",
		"sub": "alice@example.com", "uid": "00u1a2b3c4d5e6f7g8h9", "cid": oktaClient,
		"scp": []string{"openid", "email", "orders:read"}, "auth_time": time.Now().Unix(),
		"groups": []string{"Everyone", "admin"},
	}
	return merge(c, extra)
}

// k8sClaims: a projected service account token (audience orders-api) of the invoicer
// service account in the billing namespace.
func k8sClaims(extra devidp.Claims) devidp.Claims {
	c := devidp.Claims{
		"iss": k8sIssuer, "aud": []string{"orders-api"}, "sub": "system:serviceaccount:billing:invoicer",
		"nbf": time.Now().Add(-time.Minute).Unix(), "jti": "2f3e4d5c-6b7a-4890-a1b2-c3d4e5f6a7b8",
		"kubernetes.io": map[string]any{
			"namespace":      "billing",
			"node":           map[string]any{"name": "node-1", "uid": "7c6b5a49-3827-4165-9f8e-7d6c5b4a3928"},
			"pod":            map[string]any{"name": "invoicer-6c9f8d7b5-x2x4q", "uid": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"},
			"serviceaccount": map[string]any{"name": "invoicer", "uid": "d4c3b2a1-f6e5-4b7a-9c8d-5f4e3d2c1b0a"},
			"warnafter":      time.Now().Add(time.Hour).Unix(),
		},
	}
	return merge(c, extra)
}

// githubClaims: a GitHub Actions OIDC token of a push to main in my-org/deploy, requested with
// the audience https://github.com/my-org (the default is the owner's URL too).
func githubClaims(extra devidp.Claims) devidp.Claims {
	c := devidp.Claims{
		"iss": githubIssuer, "aud": "https://github.com/my-org", "jti": "b6f4e0a2-9c1d-4e3f-8a7b-5c6d7e8f9a0b",
		"sub": "repo:my-org/deploy:ref:refs/heads/main", "ref": "refs/heads/main", "ref_type": "branch",
		"sha": "d6e1a8c0f3b2e4d5c6b7a8f9e0d1c2b3a4f5e6d7", "repository": "my-org/deploy", "repository_id": "74",
		"repository_owner": "my-org", "repository_owner_id": "65", "repository_visibility": "private",
		"actor": "octocat", "actor_id": "12", "workflow": "release", "event_name": "push",
		"run_id": "8812345678", "run_number": "10", "run_attempt": "1", "runner_environment": "github-hosted",
		"job_workflow_ref": "my-org/deploy/.github/workflows/release.yml@refs/heads/main",
		"nbf":              time.Now().Add(-time.Minute).Unix(),
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
	{
		name: "Keycloak",
		config: `
issuers:
  - issuer: "` + keycloakRealm + `"
    jwks_file: keys.json
    audiences: ["orders-api"]   # added to aud by an audience mapper
    roles_claims: [realm_access.roles, resource_access]
identity_headers:
  x-user-id: sub
  x-user-name: preferred_username
  x-user-email: email
  x-user-roles: roles
`,
		rules: `
rules:
  - name: admin
    match: { paths: ["/admin/**"] }
    require: { any_roles: [admin] }
  - name: orders
    match: { paths: ["/orders/**"] }
    require: { any_roles: ["orders-api:writer"] }
  - name: api
    match: { paths: ["/api/**"] }
`,
		cases: []providerCase{
			{name: "realm role", path: "/admin/x", claims: keycloakClaims(nil), status: 200, reason: reason.OK,
				headers: "[{x-user-email alice@example.com} {x-user-id " + keycloakUser + "} {x-user-name alice} " +
					"{x-user-roles account:manage-account,account:view-profile,admin,default-roles-shop,offline_access,orders-api:writer,uma_authorization}]"},
			{name: "without the realm role", path: "/admin/x",
				claims: keycloakClaims(devidp.Claims{"realm_access": map[string]any{"roles": []string{"default-roles-shop"}}}), status: 403, reason: reason.Forbidden},
			{name: "client role", path: "/orders/1", claims: keycloakClaims(devidp.Claims{"realm_access": nil}), status: 200, reason: reason.OK,
				headers: "[{x-user-email alice@example.com} {x-user-id " + keycloakUser + "} {x-user-name alice} " +
					"{x-user-roles account:manage-account,account:view-profile,orders-api:writer}]"},
			{name: "the role of another client", path: "/orders/1",
				claims: keycloakClaims(devidp.Claims{"resource_access": map[string]any{"billing-api": map[string]any{"roles": []string{"writer"}}}}), status: 403, reason: reason.Forbidden},
			{name: "a realm role named like the client role", path: "/orders/1",
				claims: keycloakClaims(devidp.Claims{"resource_access": nil, "realm_access": map[string]any{"roles": []string{"writer"}}}), status: 403, reason: reason.Forbidden},
			{name: "without the audience mapper (aud account)", path: "/api/x", claims: keycloakClaims(devidp.Claims{"aud": "account"}), status: 401, reason: reason.WrongAudience},
			{name: "another realm", path: "/api/x", claims: keycloakClaims(devidp.Claims{"iss": "https://sso.example.com/realms/master"}), status: 401, reason: reason.UnknownIssuer},
			{name: "a refresh token", path: "/api/x", claims: keycloakClaims(devidp.Claims{"typ": "Refresh"}), status: 401, reason: reason.InvalidToken},
		},
	},
	{
		name: "Auth0",
		config: `
issuers:
  - issuer: "` + auth0Tenant + `"   # with the trailing slash
    jwks_file: keys.json
    audiences: ["` + auth0API + `"]   # the API's identifier
    authorized_parties: ["` + auth0Client + `"]
    roles_claims: ["https://example.com/roles", permissions]
identity_headers:
  x-user-id: sub
  x-user-email: https://example.com/email
  x-user-roles: roles
  x-user-scopes: scopes
`,
		rules: `
rules:
  - name: admin
    match: { paths: ["/admin/**"] }
    require: { any_roles: [admin] }
  - name: orders-delete
    match: { paths: ["/orders/**"] }
    require: { any_roles: ["delete:orders"] }
  - name: reports
    match: { paths: ["/reports/**"] }
    require: { scopes: [admin] }
  - name: api
    match: { paths: ["/api/**"] }
`,
		cases: []providerCase{
			{name: "namespaced role", path: "/admin/x", claims: auth0Claims(nil), status: 200, reason: reason.OK,
				headers: "[{x-user-email alice@example.com} {x-user-id auth0|64b7f0c2a1e3d4f5a6b7c8d9} {x-user-roles admin,delete:orders,read:orders} {x-user-scopes openid,profile,email,read:orders}]"},
			{name: "without the namespaced role", path: "/admin/x", claims: auth0Claims(devidp.Claims{"https://example.com/roles": []string{"support"}}), status: 403, reason: reason.Forbidden},
			{name: "a permission", path: "/orders/1", claims: auth0Claims(devidp.Claims{"https://example.com/roles": nil}), status: 200, reason: reason.OK,
				headers: "[{x-user-email alice@example.com} {x-user-id auth0|64b7f0c2a1e3d4f5a6b7c8d9} {x-user-roles delete:orders,read:orders} {x-user-scopes openid,profile,email,read:orders}]"},
			{name: "without the permission", path: "/orders/1", claims: auth0Claims(devidp.Claims{"permissions": []string{"read:orders"}}), status: 403, reason: reason.Forbidden},
			{name: "the scope", path: "/reports/1", claims: auth0Claims(devidp.Claims{"scope": "openid admin"}), status: 200, reason: reason.OK,
				headers: "[{x-user-email alice@example.com} {x-user-id auth0|64b7f0c2a1e3d4f5a6b7c8d9} {x-user-roles admin,delete:orders,read:orders} {x-user-scopes openid,admin}]"},
			{name: "scope superadmin is not admin", path: "/reports/1", claims: auth0Claims(devidp.Claims{"scope": "openid superadmin admins"}), status: 403, reason: reason.InsufficientScope},
			{name: "a permission is not a scope", path: "/reports/1", claims: auth0Claims(devidp.Claims{"permissions": []string{"admin"}}), status: 403, reason: reason.InsufficientScope},
			{name: "a token for the userinfo endpoint only", path: "/api/x", claims: auth0Claims(devidp.Claims{"aud": "https://example.eu.auth0.com/userinfo"}), status: 401, reason: reason.WrongAudience},
			{name: "another API", path: "/api/x", claims: auth0Claims(devidp.Claims{"aud": []string{"https://billing.example.com", "https://example.eu.auth0.com/userinfo"}}), status: 401, reason: reason.WrongAudience},
			{name: "another application", path: "/api/x", claims: auth0Claims(devidp.Claims{"azp": "Pq4Rs7Tu0Vw3Xy6Za9Bc2De5Fg8Hi1Jk"}), status: 401, reason: reason.InvalidToken},
			{name: "the issuer without its trailing slash", path: "/api/x", claims: auth0Claims(devidp.Claims{"iss": "https://example.eu.auth0.com"}), status: 401, reason: reason.UnknownIssuer},
		},
	},
	{
		name: "Okta custom authorization server",
		config: `
issuers:
  - issuer: "` + oktaAS + `"
    jwks_file: keys.json
    audiences: ["api://default"]
    authorized_parties: ["` + oktaClient + `"]
    authorized_party_claims: [cid]
    roles_claims: [groups]
identity_headers:
  x-user-id: uid
  x-user-name: sub
  x-client-id: cid
  x-user-roles: roles
  x-user-scopes: scopes
`,
		rules: `
rules:
  - name: admin
    match: { paths: ["/admin/**"] }
    require: { any_roles: [admin] }
  - name: reports
    match: { paths: ["/reports/**"] }
    require: { scopes: [admin] }
  - name: api
    match: { paths: ["/api/**"] }
`,
		cases: []providerCase{
			{name: "in the admin group", path: "/admin/x", claims: oktaClaims(nil), status: 200, reason: reason.OK,
				headers: "[{x-client-id " + oktaClient + "} {x-user-id 00u1a2b3c4d5e6f7g8h9} {x-user-name alice@example.com} {x-user-roles Everyone,admin} {x-user-scopes openid,email,orders:read}]"},
			{name: "not in the group", path: "/admin/x", claims: oktaClaims(devidp.Claims{"groups": []string{"Everyone"}}), status: 403, reason: reason.Forbidden},
			{name: "the scope", path: "/reports/1", claims: oktaClaims(devidp.Claims{"scp": []string{"openid", "admin"}}), status: 200, reason: reason.OK,
				headers: "[{x-client-id " + oktaClient + "} {x-user-id 00u1a2b3c4d5e6f7g8h9} {x-user-name alice@example.com} {x-user-roles Everyone,admin} {x-user-scopes openid,admin}]"},
			{name: "scope superadmin is not admin", path: "/reports/1", claims: oktaClaims(devidp.Claims{"scp": []string{"superadmin", "admin:read"}}), status: 403, reason: reason.InsufficientScope},
			{name: "a group is not a scope", path: "/reports/1", claims: oktaClaims(nil), status: 403, reason: reason.InsufficientScope},
			{name: "another audience", path: "/api/x", claims: oktaClaims(devidp.Claims{"aud": "api://billing"}), status: 401, reason: reason.WrongAudience},
			{name: "another client", path: "/api/x", claims: oktaClaims(devidp.Claims{"cid": "0oa9z8y7x6w5v4u3t2s1"}), status: 401, reason: reason.InvalidToken},
			{name: "the org authorization server", path: "/api/x", claims: oktaClaims(devidp.Claims{"iss": "https://dev-123456.okta.com"}), status: 401, reason: reason.UnknownIssuer},
		},
	},
	{
		name: "Entra ID v2, one tenant",
		config: `
issuers:
  - issuer: "https://login.microsoftonline.com/` + entraTenant + `/v2.0"
    jwks_file: keys.json
    audiences: ["` + entraAPI + `"]
    authorized_parties: ["` + entraClient + `"]
    roles_claims: [roles]
identity_headers:
  x-user-id: oid
  x-user-name: preferred_username
  x-user-roles: roles
  x-user-scopes: scopes
`,
		rules: `
rules:
  - name: admin
    match: { paths: ["/admin/**"] }
    require: { any_roles: [admin] }
  - name: orders
    match: { paths: ["/orders/**"] }
    require: { scopes: [Orders.Write] }
  - name: api
    match: { paths: ["/api/**"] }
`,
		cases: []providerCase{
			{name: "app role", path: "/admin/x", claims: entraV2Claims(entraTenant, nil), status: 200, reason: reason.OK,
				headers: "[{x-user-id 00000000-0000-0000-66f3-3332eca7ea81} {x-user-name alice@contoso.example} {x-user-roles admin} {x-user-scopes orders.read}]"},
			{name: "without the app role", path: "/admin/x", claims: entraV2Claims(entraTenant, devidp.Claims{"roles": nil}), status: 403, reason: reason.Forbidden},
			{name: "delegated scope", path: "/orders/1", claims: entraV2Claims(entraTenant, devidp.Claims{"scp": "Orders.Read Orders.Write", "roles": nil}), status: 200, reason: reason.OK,
				headers: "[{x-user-id 00000000-0000-0000-66f3-3332eca7ea81} {x-user-name alice@contoso.example} {x-user-scopes Orders.Read,Orders.Write}]"},
			{name: "without the scope", path: "/orders/1", claims: entraV2Claims(entraTenant, devidp.Claims{"scp": "Orders.Read Orders.WriteAll"}), status: 403, reason: reason.InsufficientScope},
			{name: "another audience (Microsoft Graph)", path: "/api/x", claims: entraV2Claims(entraTenant, devidp.Claims{"aud": "00000003-0000-0000-c000-000000000000"}), status: 401, reason: reason.WrongAudience},
			{name: "another app", path: "/api/x", claims: entraV2Claims(entraTenant, devidp.Claims{"azp": "00000000-aaaa-4bbb-8ccc-000000000000"}), status: 401, reason: reason.InvalidToken},
			{name: "another tenant", path: "/api/x", claims: entraV2Claims(entraOtherTenant, nil), status: 401, reason: reason.UnknownIssuer},
			{name: "a v1 token of the tenant (no alias)", path: "/api/x", claims: entraV1Claims(devidp.Claims{"aud": entraAPI}), status: 401, reason: reason.UnknownIssuer},
		},
	},
	{
		name: "Kubernetes service account token",
		config: `
issuers:
  - issuer: "` + k8sIssuer + `"
    jwks_file: keys.json
    audiences: ["orders-api"]   # the projected token's audience
identity_headers:
  x-user-id: sub
  x-ns: kubernetes.io.namespace
  x-sa: kubernetes.io.serviceaccount.name
`,
		rules: `
rules:
  - name: invoices
    match: { paths: ["/api/invoices/**"] }
    require:
      claims: { kubernetes.io.namespace: billing }
      when: 'claims.sub.startsWith("system:serviceaccount:billing:")'
  - name: api
    match: { paths: ["/api/**"] }
`,
		cases: []providerCase{
			{name: "a service account of the namespace", path: "/api/invoices/1", claims: k8sClaims(nil), status: 200, reason: reason.OK,
				headers: "[{x-ns billing} {x-sa invoicer} {x-user-id system:serviceaccount:billing:invoicer}]"},
			{name: "a service account of another namespace", path: "/api/invoices/1",
				claims: k8sClaims(devidp.Claims{"sub": "system:serviceaccount:shop:web", "kubernetes.io": map[string]any{
					"namespace": "shop", "serviceaccount": map[string]any{"name": "web", "uid": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"}}}),
				status: 403, reason: reason.Forbidden},
			{name: "the namespace claim without the matching sub", path: "/api/invoices/1",
				claims: k8sClaims(devidp.Claims{"sub": "system:serviceaccount:shop:web"}), status: 403, reason: reason.Forbidden},
			{name: "the API server's default audience", path: "/api/x", claims: k8sClaims(devidp.Claims{"aud": []string{k8sIssuer}}), status: 401, reason: reason.WrongAudience},
		},
	},
	{
		name: "GitHub Actions OIDC",
		config: `
issuers:
  - issuer: "` + githubIssuer + `"
    jwks_file: keys.json
    audiences: ["https://github.com/my-org"]   # the audience the workflow asks for
identity_headers:
  x-user-id: sub
  x-github-repository: repository
  x-github-ref: ref
  x-github-actor: actor
  x-github-run-id: run_id
`,
		rules: `
rules:
  - name: deploy
    match: { paths: ["/deploy/**"] }
    require:
      when: 'claims.repository == "my-org/deploy" && claims.ref == "refs/heads/main"'
  - name: api
    match: { paths: ["/api/**"] }
`,
		cases: []providerCase{
			{name: "main of the deploy repository", path: "/deploy/prod", claims: githubClaims(nil), status: 200, reason: reason.OK,
				headers: "[{x-github-actor octocat} {x-github-ref refs/heads/main} {x-github-repository my-org/deploy} {x-github-run-id 8812345678} {x-user-id repo:my-org/deploy:ref:refs/heads/main}]"},
			{name: "another branch", path: "/deploy/prod",
				claims: githubClaims(devidp.Claims{"ref": "refs/heads/feature", "sub": "repo:my-org/deploy:ref:refs/heads/feature"}), status: 403, reason: reason.Forbidden},
			{name: "a pull request", path: "/deploy/prod",
				claims: githubClaims(devidp.Claims{"ref": "refs/pull/7/merge", "sub": "repo:my-org/deploy:pull_request", "event_name": "pull_request"}), status: 403, reason: reason.Forbidden},
			{name: "another repository of the organisation", path: "/deploy/prod",
				claims: githubClaims(devidp.Claims{"repository": "my-org/website", "sub": "repo:my-org/website:ref:refs/heads/main"}), status: 403, reason: reason.Forbidden},
			{name: "another organisation's audience", path: "/api/x",
				claims: githubClaims(devidp.Claims{"aud": "https://github.com/other-org", "repository": "other-org/deploy", "repository_owner": "other-org"}), status: 401, reason: reason.WrongAudience},
		},
	},
	{
		// The README's Dex snippet: the API has a client of its own, which apps ask tokens for
		// through Dex's cross-client trust (aud orders-api, azp the app).
		name: "Dex, the API's own audience",
		config: `
issuers:
  - issuer: "https://dex.example.com/dex"
    jwks_file: keys.json
    audiences: ["orders-api"]
    authorized_parties: ["web-app"]
    roles_claims: [groups]
identity_headers:
  x-user-id: sub
  x-user-name: name
  x-user-email: email
  x-user-roles: roles
`,
		cases: []providerCase{
			{name: "the app's token for the API, in the admin group", path: "/admin/x", claims: dexClaims(nil), status: 200, reason: reason.OK,
				headers: "[{x-user-email alice@example.com} {x-user-id CiQ1YzRiM2EyOS0xZDBlLTRmNmEtOGI3Yy05ZDhlN2Y2YTViNGMSBWxvY2Fs} {x-user-name Alice} {x-user-roles admin,staff}]"},
			{name: "without the group", path: "/admin/x", claims: dexClaims(devidp.Claims{"groups": []string{"staff"}}), status: 403, reason: reason.Forbidden},
			{name: "the app's own login token (ID or access: they look alike)", path: "/api/x", claims: dexClaims(devidp.Claims{"aud": "web-app", "azp": nil}), status: 401, reason: reason.WrongAudience},
			{name: "another app's token for the API", path: "/api/x", claims: dexClaims(devidp.Claims{"azp": "other-app"}), status: 401, reason: reason.InvalidToken},
		},
	},
}

func dexClaims(extra devidp.Claims) devidp.Claims {
	c := devidp.Claims{
		"iss": "https://dex.example.com/dex", "sub": "CiQ1YzRiM2EyOS0xZDBlLTRmNmEtOGI3Yy05ZDhlN2Y2YTViNGMSBWxvY2Fs",
		"aud": "orders-api", "azp": "web-app", "at_hash": "bYzXk1mXyEGN5P4yv-Fm_A", "nonce": "n-0S6_WzA2Mj",
		"email": "alice@example.com", "email_verified": true, "name": "Alice", "groups": []string{"admin", "staff"},
	}
	return merge(c, extra)
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
			rules := p.rules
			if rules == "" {
				rules = providerRules
			}
			engine := oneShotEngine(t, []byte(p.config+rules), dir)
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
	engine := oneShotEngine(t, []byte(`
issuers:
  - issuer: "https://login.microsoftonline.com/{tenantid}/v2.0"
    jwks_uri: "`+srv.URL+`/common/discovery/v2.0/jwks"
    tenants: ["`+entraTenant+`", "`+entraOtherTenant+`"]
    audiences: ["`+entraAPI+`"]
    roles_claims: [roles]
`+providerRules), t.TempDir())
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
