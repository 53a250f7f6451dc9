package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-authz/portcullis/rules"
	"github.com/portcullis-authz/portcullis/token"
)

// issuerKeys are the keys of an issuers entry, as an unknown key's message lists them.
const issuerKeys = "issuer, issuer_aliases, tenants, insecure_any_tenant, jwks_uri, jwks_file, audiences, audience_claims, authorized_parties, authorized_party_claims, algorithms, leeway, refresh_interval, min_refresh_interval, ca_file, client_cert_file, client_key_file, proxy_url, roles_claims, token_types, introspection"

// TestLoadBadConfigs loads one fixture per validation rule and asserts the exact message.
func TestLoadBadConfigs(t *testing.T) {
	cases := []struct{ file, want string }{
		{"addr_not_host_port", "server.admin_addr: \"9090\" is not host:port (write \":9191\" or \"127.0.0.1:9191\")"},
		{"addr_twice", "server.http_addr: \":9191\" is already used by server.grpc_addr"},
		{"alias_empty", "issuers[0].issuer_aliases[0]: empty alias; write the other iss spelling, e.g. accounts.google.com"},
		{"alias_not_template", `issuers[0].issuer_aliases[0]: "https://sts.windows.net/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/" has no {tenantid}; the issuer is a template, so its aliases are templates too (e.g. https://sts.windows.net/{tenantid}/)`},
		{"alias_template_without_template_issuer", `issuers[0].issuer_aliases[0]: "https://sts.windows.net/{tenantid}/" is a template but the issuer is not; put {tenantid} in the issuer too, or write the tenant id`},
		{"alias_twice", `issuers[1].issuer_aliases[0]: "accounts.google.com" is already configured as issuers[0]`},
		{"any_tenant_without_template", "issuers[0].insecure_any_tenant: only a template issuer (with {tenantid} in its path) has tenants"},
		{"audience_claims_empty", "issuers[0].audience_claims[1]: empty claim name"},
		{"authorized_party_claims_twice", `issuers[0].authorized_party_claims[2]: "azp" is listed twice`},
		{"alg_hmac", "issuers[0].algorithms[0]: \"HS256\" is a shared-secret algorithm; Portcullis verifies only with the issuer's public keys (use RS256, ES256, ...)"},
		{"alg_none", "issuers[0].algorithms[1]: \"none\" means unsigned tokens and is never accepted"},
		{"alg_unknown", "issuers[0].algorithms[0]: unknown algorithm \"RS257\"; choose from RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA"},
		{"ca_file_missing", `issuers[0].ca_file: cannot read "testdata/files/missing.pem": no such file or directory`},
		{"ca_file_no_certificate", `issuers[0].ca_file: "testdata/files/no_certificate.pem" holds no PEM certificate; write the CA certificates as PEM ("-----BEGIN CERTIFICATE-----" blocks)`},
		{"client_cert_without_key", "issuers[0]: client_cert_file and client_key_file must be set together"},
		{"client_key_missing", `issuers[0].client_key_file: cannot read "testdata/files/missing-key.pem": no such file or directory`},
		{"client_cert_key_mismatch", `issuers[0]: client_cert_file "testdata/files/test-server.pem" and client_key_file "testdata/files/other-key.pem" are not a usable key pair: tls: private key does not match public key; write the client certificate (chain) the identity provider trusts and its private key as PEM`},
		{"client_cert_not_pem", `issuers[0]: client_cert_file "testdata/files/no_certificate.pem" and client_key_file "testdata/files/other-key.pem" are not a usable key pair: tls: failed to find any PEM data in certificate input; write the client certificate (chain) the identity provider trusts and its private key as PEM`},
		{"proxy_url_not_http", `issuers[0].proxy_url: "socks5://proxy.example.com:1080" is not an http(s) URL; write the proxy as http://proxy.example.com:3128 (or https://)`},
		{"proxy_url_no_host", `issuers[0].proxy_url: "proxy.example.com:3128" is not an http(s) URL; write the proxy as http://proxy.example.com:3128 (or https://)`},
		{"proxy_url_with_path", `issuers[0].proxy_url: "http://user:xxxxx@proxy.example.com:3128/proxy" has a path, query or fragment; a proxy is only scheme://host:port`},
		{"proxy_url_with_jwks_file", "issuers[0].proxy_url: the keys come from jwks_file and are never fetched, and the issuer has no introspection; remove proxy_url"},
		{"bool_not_bool", "forward_token: expected true or false, got \"no\" (line 5)"},
		{"dpop_max_age_zero", "dpop.max_age: 0s is out of range; use a duration above 0s and at most 10m0s (default 1m0s)"},
		{"dpop_max_age_long", "dpop.max_age: 1h0m0s is out of range; use a duration above 0s and at most 10m0s (default 1m0s)"},
		{"mtls_header_unknown", `mtls.client_cert_header: "ssl-client-cert" is not a choice; use "x-forwarded-client-cert" (Envoy's format), "client-cert" (RFC 9440), or leave it out to read Envoy's attributes.source.certificate`},
		{"cache_negative", "cache.tokens: -1 is negative; use 0 to turn the token cache off"},
		{"cookie_with_prefix", "tokens.sources[0].prefix: only a header source has a prefix"},
		{"duration_without_unit", "issuers[0].leeway: \"30\" is not a duration (line 5); write it with a unit, e.g. 30s or 15m"},
		{"forward_auth_prefix", "forward_auth.path_prefix: \"authz/\" must start with \"/\" and not end with one, e.g. \"/authz\""},
		{"forward_auth_unknown_convention", "forward_auth.trusted_headers[0]: \"x-real-uri\" is not a convention; use \"x-forwarded\" (Traefik, Caddy) or \"x-original\" (nginx)"},
		{"grpc_addr_empty", "server.grpc_addr: must be set (Envoy's ext_authz talks to it), e.g. \":9191\""},
		{"identity_headers_max_bytes_out_of_range", "identity_headers_max_bytes: 100 is out of range; use 256 to 65536 (default 8192)"},
		{"identity_header_bad_path", "identity_headers.x-user-tier: \"https://example.com/tier.\" is not a claim name or dotted path (write e.g. email_verified or realm_access.roles)"},
		{"identity_header_no_claim", "identity_headers.x-user-id: name the claim to copy, e.g. sub (or roles for the merged role list)"},
		{"identity_header_reserved", "identity_headers.authorization: \"authorization\" cannot carry identity (it is a request or token header); use a name such as x-user-id"},
		{"identity_header_twice", "identity_headers.x-user-id: header given twice (header names are case-insensitive)"},
		{"issuer_empty", "issuers[0].issuer: must be set to the exact `iss` of the tokens, e.g. https://sso.example.com/realms/demo"},
		{"issuer_not_url", "issuers[0].issuer: \"sso.example.com/realms/demo\" is not an absolute http(s) URL; write the issuer with its scheme (https://sso.example.com/realms/demo) and list other spellings of iss in issuer_aliases"},
		{"issuer_twice", "issuers[1].issuer: \"https://sso.example.com/realms/demo\" is already configured as issuers[0]"},
		{"jwks_file_empty_set", `issuers[0].jwks_file: "testdata/files/empty_set.json": no usable keys: the key set is empty; put the issuer's public signing keys in it, or allow their algorithm in issuers[0].algorithms`},
		{"jwks_file_missing", `issuers[0].jwks_file: cannot read "testdata/files/missing.json": no such file or directory`},
		{"jwks_file_not_a_jwk_set", `issuers[0].jwks_file: "testdata/files/not_a_jwks.json": not a JWK Set: no "keys" array; write the JWK Set the issuer publishes at its jwks_uri ({"keys": [...]}, RFC 7517 §5)`},
		{"jwks_file_no_usable_key", `issuers[0].jwks_file: "testdata/files/keys.json": no usable keys among 1 published (allowed algorithms RS256): keys[0] (kid "config-test"): EC P-256 alg ES256 key fits none of the allowed algorithms; put the issuer's public signing keys in it, or allow their algorithm in issuers[0].algorithms`},
		{"jwks_uri_and_file", "issuers[0]: set jwks_uri or jwks_file, not both"},
		{"jwks_uri_not_url", `issuers[0].jwks_uri: "ftp://sso.example.com/realms/demo/certs" is not an absolute http(s) URL`},
		{"key_twice", "jwks_cache_dir: key given twice (line 6)"},
		{"leeway_too_large", "issuers[0].leeway: 1h0m0s is more than 5m; fix the clocks instead (NTP)"},
		{"list_expected", "issuers[0].audiences: expected a list (line 4)"},
		{"matrix_parameters_unknown", `paths.matrix_parameters: "allow" is not a choice; use "reject" (the default: a ";" in a path segment is answered 400) or "strip" (";..." is removed from each segment before matching, as Tomcat, Jetty and Spring do)`},
		{"max_bytes_out_of_range", "tokens.max_bytes: 10 is out of range; use 512 to 1048576 (default 16384)"},
		{"min_refresh_above_refresh", "issuers[0].min_refresh_interval: 5m0s is longer than refresh_interval 1m0s"},
		{"no_issuers", "issuers: at least one issuer is needed"},
		{"no_rules", "rules: no rules; every request would be denied with 403 (add at least one rule)"},
		{"refresh_below_default_floor", "issuers[0].min_refresh_interval: 10s is longer than refresh_interval 5s"},
		{"refresh_zero", "issuers[0].refresh_interval: must be positive, e.g. 15m"},
		{"rule_when_not_boolean", `rules[1].require.when: the expression gives a string, not a boolean; compare it (for example request.method == "GET")`},
		{"roles_claim_bad_path", "issuers[0].roles_claims[0]: \"realm_access..roles\" is not a claim name or dotted path (write e.g. email_verified or realm_access.roles)"},
		{"source_empty", "tokens.sources[0]: set header (with an optional prefix) or cookie"},
		{"source_header_and_cookie", "tokens.sources[0]: set header or cookie, not both"},
		{"tls_cert_without_key", "server.tls: cert_file and key_file must be set together"},
		{"tls_cert_not_pem", `server.tls: cert_file "testdata/files/no_certificate.pem" and key_file "testdata/files/test-server-key.pem" are not a usable key pair: tls: failed to find any PEM data in certificate input; write the certificate chain and its private key as PEM`},
		{"tls_client_ca_no_certificate", `server.tls.client_ca_file: "testdata/files/no_certificate.pem" holds no PEM certificate; write the CA certificates that sign client certificates as PEM ("-----BEGIN CERTIFICATE-----" blocks)`},
		{"template_no_jwks_uri", "issuers[0].jwks_uri: a template issuer has no discovery document; set jwks_uri (Entra ID: https://login.microsoftonline.com/common/discovery/v2.0/keys) or jwks_file"},
		{"template_no_tenants", "issuers[0].tenants: the issuer is a {tenantid} template, so list the tenant ids it accepts (Entra's tid), or set insecure_any_tenant: true to accept every tenant"},
		{"template_not_segment", `issuers[0].issuer: "https://login.microsoftonline.com/v2.0-{tenantid}": {tenantid} must be one whole path segment, once, e.g. https://login.microsoftonline.com/{tenantid}/v2.0`},
		{"template_tenants_and_any", "issuers[0]: set tenants or insecure_any_tenant, not both"},
		{"tenant_not_id", `issuers[0].tenants[1]: "a/b" is not a tenant id (one path segment, e.g. 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0)`},
		{"tenants_without_template", "issuers[0].tenants: only a template issuer (with {tenantid} in its path) has tenants; write the tenant id in the issuer instead"},
		{"token_type_id", "issuers[0].token_types[1]: \"ID\" tokens are not access tokens and must never be accepted as bearer tokens"},
		{"unknown_key", "server.grpc_adr: unknown key (line 2); did you mean grpc_addr? known keys here: grpc_addr, http_addr, admin_addr, tls"},
		{"audience_misspelt", "issuers[0].audience: unknown key (line 3); did you mean audiences? known keys here: " + issuerKeys},
		// Every problem in one pass: those of reading the file, each with its line, then those
		// of the checks after it, but for the checks of a field that could not be read
		// (refresh_interval: no "must be positive" besides its decoding problem).
		{"several_problems", `9 problems:
  server.grpc_adr: unknown key (line 3); did you mean grpc_addr? known keys here: grpc_addr, http_addr, admin_addr, tls
  issuers[0].audience: unknown key (line 7); did you mean audiences? known keys here: ` + issuerKeys + `
  issuers[0].leeway: "30" is not a duration (line 8); write it with a unit, e.g. 30s or 15m
  issuers[0].refresh_interval: expected a duration such as 30s (line 9)
  rules[0].match.paths: expected a list (line 12)
  rules[0].require.scope: unknown key (line 13); did you mean scopes? known keys here: any_roles, all_roles, scopes, claims, when, any_of, audiences, active, sender_constrained
  forward_token: expected true or false, got "no" (line 14)
  server.http_addr: "9192" is not host:port (write ":9191" or "127.0.0.1:9191")
  issuers[0].issuer: "sso.example.com/realms/demo" is not an absolute http(s) URL; write the issuer with its scheme (https://sso.example.com/realms/demo) and list other spellings of iss in issuer_aliases`},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.file+".yaml"] = true
		t.Run(c.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", "bad", c.file+".yaml"))
			if err == nil {
				t.Fatal("loaded without error")
			}
			want := "config: " + c.want
			if err.Error() != want {
				t.Errorf("error\n got: %s\nwant: %s", err, want)
			}
		})
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "bad", "*.yaml"))
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("fixture %s has no expected message", f)
		}
	}
}

func TestDefaults(t *testing.T) {
	l, err := Parse([]byte(`
issuers:
  - issuer: https://sso.example.com/realms/demo
    audiences: [orders-api]
rules:
  - name: api
    match: { paths: ["/api/**"] }
`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if l.Server.GRPCAddr != ":9191" || l.Server.HTTPAddr != ":9192" || l.Server.AdminAddr != ":9090" {
		t.Errorf("server defaults: %+v", l.Server)
	}
	is := l.Issuers[0]
	if is.Leeway != 30*time.Second || is.RefreshInterval != 15*time.Minute || is.MinRefreshInterval != 10*time.Second {
		t.Errorf("issuer durations: %v %v %v", is.Leeway, is.RefreshInterval, is.MinRefreshInterval)
	}
	if strings.Join(is.Algorithms, " ") != "RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA" {
		t.Errorf("algorithms: %v", is.Algorithms)
	}
	if strings.Join(is.RolesClaims, " ") != "realm_access.roles resource_access" {
		t.Errorf("roles_claims: %v", is.RolesClaims)
	}
	if strings.Join(is.TokenTypes, " ") != "Bearer at+jwt" {
		t.Errorf("token_types: %v", is.TokenTypes)
	}
	if len(l.Tokens.Sources) != 1 || l.Tokens.Sources[0] != (TokenSource{Header: "authorization", Prefix: "Bearer "}) {
		t.Errorf("sources: %+v", l.Tokens.Sources)
	}
	if strings.Join(l.ForwardAuth.TrustedHeaders, " ") != "x-forwarded x-original" || l.ForwardAuth.PathPrefix != "" {
		t.Errorf("forward_auth: %+v", l.ForwardAuth)
	}
	if l.Tokens.MaxBytes != 16384 || l.Cache.Tokens != 10000 || !l.ForwardToken {
		t.Errorf("max_bytes %d cache %d forward %v", l.Tokens.MaxBytes, l.Cache.Tokens, l.ForwardToken)
	}
	if l.Paths.MatrixParameters != "reject" || l.Paths.Options() != (rules.PathOptions{}) {
		t.Errorf("paths: %+v", l.Paths)
	}
	if l.IdentityHeadersMaxBytes != 8192 {
		t.Errorf("identity_headers_max_bytes: %d", l.IdentityHeadersMaxBytes)
	}
	if len(l.IdentityHeaders) != 5 || l.IdentityHeaders["x-user-roles"] != "roles" {
		t.Errorf("identity headers: %v", l.IdentityHeaders)
	}
	if len(l.Identity) != 5 || l.Identity["x-user-roles"].Field() != token.FieldRoles || l.Identity["x-user-name"].Path().String() != "preferred_username" {
		t.Errorf("identity headers compiled: %v", l.Identity)
	}
	if strings.Join(is.AudienceClaims, " ") != "aud" || strings.Join(is.AuthorizedPartyClaims, " ") != "azp" || len(is.IssuerAliases) != 0 || len(is.Tenants) != 0 || is.InsecureAnyTenant {
		t.Errorf("audience_claims %v authorized_party_claims %v aliases %v tenants %v any %v", is.AudienceClaims, is.AuthorizedPartyClaims, is.IssuerAliases, is.Tenants, is.InsecureAnyTenant)
	}
	if len(l.RolesClaims) != 1 || fmt.Sprint(l.RolesClaims[0]) != "[realm_access.roles resource_access]" {
		t.Errorf("roles_claims compiled: %v", l.RolesClaims)
	}
	if len(l.Warnings) != 0 {
		t.Errorf("warnings: %v", l.Warnings)
	}
}

func TestExplicitValuesKept(t *testing.T) {
	l, err := Parse([]byte(`
server: { http_addr: "", admin_addr: "" }
issuers:
  - issuer: https://sso.example.com/realms/demo
    audiences: [orders-api]
    leeway: 0s
forward_token: false
cache: { tokens: 0 }
identity_headers: { X-Subject: sub }
paths: { matrix_parameters: strip }
rules:
  - name: api
    match: { paths: ["/api/**"] }
`), "")
	if err != nil {
		t.Fatal(err)
	}
	if l.Server.HTTPAddr != "" || l.Server.AdminAddr != "" {
		t.Errorf("explicit empty addresses must turn listeners off: %+v", l.Server)
	}
	if l.Issuers[0].Leeway != 0 {
		t.Errorf("explicit leeway 0s replaced by %v", l.Issuers[0].Leeway)
	}
	if l.ForwardToken || l.Cache.Tokens != 0 {
		t.Errorf("forward_token / cache.tokens not kept")
	}
	if l.Paths.Options() != (rules.PathOptions{StripMatrixParameters: true}) {
		t.Errorf("paths.matrix_parameters: strip not kept: %+v", l.Paths)
	}
	if len(l.IdentityHeaders) != 1 || l.IdentityHeaders["x-subject"] != "sub" {
		t.Errorf("identity headers replace the defaults, lower-cased: %v", l.IdentityHeaders)
	}
}

func TestWarnings(t *testing.T) {
	l, err := Parse([]byte(`
issuers:
  - issuer: https://a.example.com
  - issuer: https://b.example.com
    audiences: [account]
rules:
  - name: api
    match: { paths: ["/api/**"] }
`), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"issuers[0].audiences: empty, so the `aud` claim is not checked and any token of this issuer is accepted whatever service it was issued for; list your client id",
		`issuers[1].audiences: "account" is Keycloak's default audience, carried by every token of the realm; add an audience mapper in Keycloak and list your client id`,
	}
	if strings.Join(l.Warnings, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings\n got: %q\nwant: %q", l.Warnings, want)
	}
}

func TestRelativePathsResolveAgainstTheFile(t *testing.T) {
	dir := t.TempDir()
	keys, err := os.ReadFile(filepath.Join("testdata", "files", "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), keys, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := []byte("issuers:\n  - issuer: https://a.example.com\n    audiences: [x]\n    jwks_file: keys.json\nrules:\n  - name: api\n")
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Load(filepath.Join(dir, "p.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Issuers[0].JWKSFile; got != filepath.Join(dir, "keys.json") {
		t.Errorf("jwks_file = %s", got)
	}
	if f := l.IssuerFiles[0]; f.JWKS == nil || f.JWKS.Len() != 1 || f.JWKSDigest == "" {
		t.Errorf("IssuerFiles[0] = %+v; want the set parsed, with its 1 key, and its digest", f)
	}
}

func TestShippedConfigsValidate(t *testing.T) {
	all, _ := filepath.Glob(filepath.Join("..", "examples", "*.yaml"))
	// *_test.yaml are policy test files (portcullis test), not configurations.
	files := slices.DeleteFunc(all, func(f string) bool { return strings.HasSuffix(f, "_test.yaml") })
	files = append(files, filepath.Join("..", "examples", "forward-auth", "portcullis.yaml"),
		filepath.Join("..", "envoy", "portcullis.yaml"))
	if len(files) == 2 {
		t.Fatal("no example configurations found")
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestEveryProblemReported(t *testing.T) {
	_, err := Parse([]byte("issuers:\n  - issuer: x\n    algorithms: [none]\ntokens: { max_bytes: 1 }\nrules: []\n"), "")
	ce, ok := err.(*Error)
	if !ok {
		t.Fatalf("error type %T: %v", err, err)
	}
	if len(ce.Problems) != 4 {
		t.Errorf("want 4 problems, got %d: %v", len(ce.Problems), ce.Problems)
	}
}

// The shipped example configurations load as they are.
func TestExamplesLoad(t *testing.T) {
	for _, path := range []string{"../examples/portcullis.yaml", "../examples/forward-auth/portcullis.yaml", "../envoy/portcullis.yaml"} {
		if _, err := Load(path); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}

// TestValidateChangesNothing: validation only reads the configuration; defaults and
// normalisation happened before it.
func TestValidateChangesNothing(t *testing.T) {
	var cfg Config
	w, err := decode([]byte("issuers:\n  - issuer: https://a.example.com\n    algorithms: []\ntokens: { sources: [{header: X-Token}] }\nidentity_headers: { X-Sub: sub }\nrules:\n  - name: api\n"), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.applyDefaults(w)
	if problems := cfg.normalise(t.TempDir()); len(problems) != 0 {
		t.Fatal(problems)
	}
	before := fmt.Sprintf("%#v", cfg)
	if errs, _ := cfg.validate(); len(errs) != 0 {
		t.Fatal(errs)
	}
	if after := fmt.Sprintf("%#v", cfg); after != before {
		t.Errorf("validate changed the configuration\nbefore: %s\n after: %s", before, after)
	}
	if cfg.Tokens.Sources[0].Header != "x-token" || cfg.IdentityHeaders["x-sub"] != "sub" || len(cfg.Issuers[0].Algorithms) != 10 {
		t.Errorf("defaults or normalisation missing: %+v", cfg)
	}
}

// TestJWKSFileTooLarge: a jwks_file is bounded as a fetched key set is (1 MiB), by validate as by
// serve, which takes the set config read.
func TestJWKSFileTooLarge(t *testing.T) {
	dir := t.TempDir()
	keys, err := os.ReadFile(filepath.Join("testdata", "files", "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Still a JWK Set with a usable key: only its size is wrong.
	big := append(bytes.TrimRight(keys, "\n"), bytes.Repeat([]byte(" "), 1<<20)...)
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), big, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := []byte("issuers:\n  - issuer: https://a.example.com\n    audiences: [x]\n    jwks_file: keys.json\nrules:\n  - name: api\n")
	_, err = Parse(cfg, dir)
	want := `config: issuers[0].jwks_file: "` + filepath.Join(dir, "keys.json") + `" is larger than 1048576 bytes; keep only the issuer's public signing keys in it`
	if err == nil || err.Error() != want {
		t.Errorf("error\n got: %v\nwant: %s", err, want)
	}
}

// TestForwardTokenWarning: forward_token: false with the HTTP forward-auth front on warns, and
// says what to do in each proxy for the configured token sources; the gRPC front alone, or
// the token forwarded, says nothing.
func TestForwardTokenWarning(t *testing.T) {
	const head = "forward_token: false, and the HTTP forward-auth front (server.http_addr) is on: its answer cannot take the token off the upstream request by itself. Envoy's http_service removes the headers the answer lists in x-envoy-auth-headers-to-remove; nginx, Caddy and Traefik ignore that list"
	const tail = " (docs/configuration.md#forward_token)"
	cases := []struct {
		name, yaml, want string
	}{
		{"default source", "forward_token: false\n",
			head + `, so remove the token there: nginx proxy_set_header Authorization ""; in the proxied location; Caddy header_up -Authorization in reverse_proxy; Traefik a headers middleware after forwardAuth with customRequestHeaders Authorization: ""` + tail},
		{"two headers and a cookie", "forward_token: false\ntokens:\n  sources:\n    - header: authorization\n      prefix: \"Bearer \"\n    - header: x-access-token\n    - cookie: access_token\n",
			head + `, so remove the token there: nginx proxy_set_header Authorization ""; proxy_set_header X-Access-Token ""; in the proxied location; Caddy header_up -Authorization, header_up -X-Access-Token in reverse_proxy; Traefik a headers middleware after forwardAuth with customRequestHeaders Authorization: "", X-Access-Token: ""` +
				"; the answer's Cookie header comes without the token cookie access_token: have every proxy set it on the request (Envoy: cookie in allowed_upstream_headers)" + tail},
		{"a cookie alone", "forward_token: false\ntokens:\n  sources:\n    - cookie: session_token\n",
			head + "; the answer's Cookie header comes without the token cookie session_token: have every proxy set it on the request (Envoy: cookie in allowed_upstream_headers)" + tail},
		{"no HTTP front", "forward_token: false\nserver:\n  http_addr: \"\"\n", ""},
		{"token forwarded", "forward_token: true\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, err := Parse([]byte("issuers:\n  - issuer: https://a.example.com\n    audiences: [api]\n    jwks_uri: https://a.example.com/keys\nrules:\n  - name: api\n"+c.yaml), "")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(l.Warnings, "\n"); got != c.want {
				t.Errorf("warnings\n got: %s\nwant: %s", got, c.want)
			}
		})
	}
}

// TestIdentityProviderIssuers: the example loads as written (a template with tenants, a
// scheme-less alias, audience and authorized-party claims); insecure_any_tenant loads with a
// loud warning.
func TestIdentityProviderIssuers(t *testing.T) {
	l, err := Parse([]byte(`
issuers:
  - issuer: "https://login.microsoftonline.com/{tenantid}/v2.0"
    issuer_aliases: ["https://sts.windows.net/{tenantid}/"]
    jwks_uri: "https://login.microsoftonline.com/common/discovery/v2.0/keys"
    tenants: ["0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"]
    audiences: ["api://orders"]
  - issuer: "https://accounts.google.com"
    issuer_aliases: ["accounts.google.com"]
    audiences: ["orders.example.com"]
  - issuer: "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf"
    audience_claims: [aud, client_id]
    authorized_party_claims: [azp, appid]
    audiences: ["5abc7defg"]
rules:
  - name: api
    match: { paths: ["/api/**"] }
`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(l.Issuers[0].Tenants, l.Issuers[0].IssuerAliases, l.Issuers[1].IssuerAliases, l.Issuers[2].AudienceClaims, l.Issuers[2].AuthorizedPartyClaims); got != "[0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d] [https://sts.windows.net/{tenantid}/] [accounts.google.com] [aud client_id] [azp appid]" {
		t.Errorf("loaded %s", got)
	}
	if len(l.Warnings) != 0 {
		t.Errorf("warnings: %q", l.Warnings)
	}

	l, err = Parse([]byte(`
issuers:
  - issuer: "https://login.microsoftonline.com/{tenantid}/v2.0"
    jwks_uri: "https://login.microsoftonline.com/common/discovery/v2.0/keys"
    insecure_any_tenant: true
    audiences: ["api://orders"]
rules:
  - name: api
    match: { paths: ["/api/**"] }
`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"issuers[0].insecure_any_tenant: INSECURE: every tenant of https://login.microsoftonline.com/{tenantid}/v2.0 is accepted, so any organisation with an account there can mint tokens that pass; list your tenants instead"}
	if !slices.Equal(l.Warnings, want) {
		t.Errorf("warnings\n got: %q\nwant: %q", l.Warnings, want)
	}
}

// TestNearestKey: an unknown key is matched with the known key it most likely misspells.
func TestNearestKey(t *testing.T) {
	known := []string{"issuer", "jwks_uri", "jwks_file", "audiences", "audience_claims", "leeway", "refresh_interval", "min_refresh_interval"}
	for _, c := range []struct{ key, want string }{
		{"audience", "audiences"},
		{"Audiences", "audiences"},
		{"jwks_url", "jwks_uri"},
		{"jwks-file", "jwks_file"},
		{"refresh-interval", "refresh_interval"},
		{"issuers", "issuer"},
		{"lee", ""},   // three edits away
		{"uri", ""},   // too short for two edits
		{"bogus", ""}, // like nothing
	} {
		if got := nearest(c.key, known); got != c.want {
			t.Errorf("nearest(%q) = %q, want %q", c.key, got, c.want)
		}
	}
}
