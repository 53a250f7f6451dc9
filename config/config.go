// Package config reads the Portcullis configuration file (every key is described in
// docs/configuration.md) in four phases, each run once: strict decode (with normalisation:
// relative paths, header-name case), defaults for the keys left out, validation (pure: it
// changes nothing) and compilation (rules compiled, jwks_file and ca_file read and parsed) into
// a Loaded. One entry point, Load (or Parse), is used by `serve`, `validate`, `check`, `dev` and
// hot reload, so every path sees the same errors; none of them touches the network.
//
// The types here are the configuration's one vocabulary: the engine takes TokenSource and the
// HTTP forward-auth front ForwardAuth as they are, and the key sets and the verifier are built
// from Issuer.
package config

import (
	"time"

	"github.com/portcullis-authz/portcullis/rules"
)

// Config is the whole configuration file.
type Config struct {
	Server          Server            `yaml:"server"`
	Issuers         []Issuer          `yaml:"issuers"`
	Tokens          Tokens            `yaml:"tokens"`
	IdentityHeaders map[string]string `yaml:"identity_headers"`
	// IdentityHeadersMaxBytes bounds each identity header's value: a larger one is not sent
	// (it is removed upstream) and is logged with its header name and size.
	IdentityHeadersMaxBytes int          `yaml:"identity_headers_max_bytes"`
	ForwardToken            bool         `yaml:"forward_token"`
	Cache                   Cache        `yaml:"cache"`
	JWKSCacheDir            string       `yaml:"jwks_cache_dir"`
	ForwardAuth             ForwardAuth  `yaml:"forward_auth"`
	Paths                   Paths        `yaml:"paths"`
	DPoP                    DPoP         `yaml:"dpop"`
	MTLS                    MTLS         `yaml:"mtls"`
	Rules                   []rules.Spec `yaml:"rules"`
	// Tracing is nil when the file has no tracing section: tracing is off.
	Tracing *Tracing `yaml:"tracing"`
}

// Paths says how request paths are read before rules are matched.
type Paths struct {
	// MatrixParameters is what a path parameter (";..." in a segment, RFC 3986 §3.3) does:
	// "reject" (the default) answers 400, as the path is ambiguous; "strip" removes it from each
	// segment before matching, the way Java servlet containers (Tomcat, Jetty) and Spring read
	// the path. Choose strip only when the upstreams read the path that way.
	MatrixParameters string `yaml:"matrix_parameters"`
}

// Values of paths.matrix_parameters.
const (
	MatrixParametersReject = "reject"
	MatrixParametersStrip  = "strip"
)

// Options are the path options the engine normalises request paths with.
func (p Paths) Options() rules.PathOptions {
	return rules.PathOptions{StripMatrixParameters: p.MatrixParameters == MatrixParametersStrip}
}

// ForwardAuth says how the HTTP forward-auth front reconstructs the original request
// (authz.RequestFromHTTP reads it).
type ForwardAuth struct {
	// TrustedHeaders are the header conventions read, in order: "x-forwarded"
	// (X-Forwarded-Method/-Host/-Uri: Traefik, Caddy) and "x-original" (X-Original-Method/-URI:
	// nginx). Only the headers your proxy itself sets may be trusted: a proxy that passes a
	// client's copy through lets the client choose the path that is authorised.
	TrustedHeaders []string `yaml:"trusted_headers"`
	// PathPrefix is stripped from the request line when no trusted header is present (Envoy's
	// http_service path_prefix).
	PathPrefix string `yaml:"path_prefix"`
}

// Forward-auth header conventions: the names trusted_headers may list. Which headers each one
// reads is the HTTP front's business (authz.RequestFromHTTP).
const (
	ConventionXForwarded = "x-forwarded"
	ConventionXOriginal  = "x-original"
)

// Server holds the listen addresses and optional TLS settings.
type Server struct {
	GRPCAddr  string `yaml:"grpc_addr"`
	HTTPAddr  string `yaml:"http_addr"`
	AdminAddr string `yaml:"admin_addr"`
	TLS       TLS    `yaml:"tls"`
}

// TLS applies to the gRPC and HTTP listeners. ClientCAFile set means mutual TLS is required.
type TLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether the listeners serve TLS.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// Issuer is one trusted token issuer. A token is routed to its issuer by its `iss` claim: the
// issuer's exact spelling, one of its aliases, or, for a template (TenantPlaceholder in the
// issuer), the issuer with a tenant in that place.
// It is the one description of an issuer: the key-set cache (jwks.Options) and the verifier
// (token.IssuerConfig) are built from it, the files it names are read once into
// Loaded.IssuerFiles.
type Issuer struct {
	Issuer string `yaml:"issuer"`
	// IssuerAliases are other iss spellings accepted for the same issuer and keys; they need
	// not be URLs. The aliases of a template are templates too.
	IssuerAliases []string `yaml:"issuer_aliases"`
	// Tenants are the tenant ids a template accepts (the tenant in iss, equal to tid).
	Tenants []string `yaml:"tenants"`
	// InsecureAnyTenant lets a template accept every tenant: any organisation with an account
	// at the identity provider can then mint tokens that verify.
	InsecureAnyTenant bool     `yaml:"insecure_any_tenant"`
	JWKSURI           string   `yaml:"jwks_uri"`
	JWKSFile          string   `yaml:"jwks_file"`
	Audiences         []string `yaml:"audiences"`
	// AudienceClaims name, in order, the claims carrying the audience; the first present is
	// it. Default [aud].
	AudienceClaims    []string `yaml:"audience_claims"`
	AuthorizedParties []string `yaml:"authorized_parties"`
	// AuthorizedPartyClaims name, in order, the claims carrying the authorized party. Default [azp].
	AuthorizedPartyClaims []string      `yaml:"authorized_party_claims"`
	Algorithms            []string      `yaml:"algorithms"`
	Leeway                time.Duration `yaml:"leeway"`
	RefreshInterval       time.Duration `yaml:"refresh_interval"`
	MinRefreshInterval    time.Duration `yaml:"min_refresh_interval"`
	CAFile                string        `yaml:"ca_file"`
	// ClientCertFile and ClientKeyFile are the client certificate (chain) and its key, as PEM,
	// presented on discovery and key-set requests to an identity provider that requires mutual
	// TLS. Set together.
	ClientCertFile string `yaml:"client_cert_file"`
	ClientKeyFile  string `yaml:"client_key_file"`
	// ProxyURL is the http(s) proxy for this issuer's discovery and key-set requests, in place
	// of HTTPS_PROXY, HTTP_PROXY and NO_PROXY; "" = those variables.
	ProxyURL    string   `yaml:"proxy_url"`
	RolesClaims []string `yaml:"roles_claims"`
	TokenTypes  []string `yaml:"token_types"`
	// Introspection, when set, lets Portcullis ask the issuer whether a token is active (RFC
	// 7662): for rules with require.active, and for opaque tokens (opaque_tokens).
	Introspection *Introspection `yaml:"introspection"`
}

// Introspection configures token introspection (RFC 7662) at one issuer
// (docs/configuration.md#introspection).
type Introspection struct {
	// Endpoint is the introspection endpoint; "" = the introspection_endpoint of the issuer's
	// discovery document.
	Endpoint string `yaml:"endpoint"`
	// ClientID and the secret in ClientSecretFile authenticate Portcullis to the endpoint
	// (client_secret_basic). The file is read at load (Loaded.IssuerFiles).
	ClientID         string `yaml:"client_id"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// ClientSecret exists only to refuse an inline secret with a clear message.
	ClientSecret string `yaml:"client_secret"`
	// OpaqueTokens: tokens that are not JWS are introspected at this issuer (at most one).
	OpaqueTokens bool `yaml:"opaque_tokens"`
	// CacheTTL bounds how long a positive answer is kept (never past the token's exp);
	// NegativeCacheTTL is how long active: false is kept. 0 = not kept.
	CacheTTL         time.Duration `yaml:"cache_ttl"`
	NegativeCacheTTL time.Duration `yaml:"negative_cache_ttl"`
	// Timeout bounds one introspection call.
	Timeout time.Duration `yaml:"timeout"`
}

// Tokens says where the bearer token is found and how large it may be.
type Tokens struct {
	Sources  []TokenSource `yaml:"sources"`
	MaxBytes int           `yaml:"max_bytes"`
}

// TokenSource is one place a token may be carried: a header (with an optional scheme prefix,
// matched case-insensitively) or a cookie. Exactly one of Header and Cookie is set. The engine
// takes it as it is (authz.Options.Sources).
type TokenSource struct {
	Header string `yaml:"header"` // lower-case once loaded
	Prefix string `yaml:"prefix"` // scheme prefix such as "Bearer ", matched case-insensitively
	Cookie string `yaml:"cookie"`
}

// Cache sizes the verified-token cache.
type Cache struct {
	// Tokens is the number of verified-token cache entries; 0 turns the cache off.
	Tokens int `yaml:"tokens"`
	// Introspection is the number of introspection answers each introspecting issuer keeps;
	// 0 turns the cache off (every check asks the issuer).
	Introspection int `yaml:"introspection"`
}
