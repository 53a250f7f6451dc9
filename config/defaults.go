package config

import (
	"fmt"
	"time"

	"github.com/portcullis-authz/portcullis/token"
)

// Defaults, as docs/configuration.md lists them. They are applied here only (applyDefaults):
// the key-set cache (jwks.Options) and the verifier take what they are given.
const (
	DefaultGRPCAddr           = ":9191"
	DefaultHTTPAddr           = ":9192"
	DefaultAdminAddr          = ":9090"
	DefaultLeeway             = 30 * time.Second
	DefaultRefreshInterval    = 15 * time.Minute
	DefaultMinRefreshInterval = 10 * time.Second
	DefaultMaxTokenBytes      = 16384
	DefaultTokenCacheSize     = 10000
	// DefaultIdentityHeadersMaxBytes is identity_headers_max_bytes left out: 8 KiB, room for
	// the payload header of a large token and well inside Envoy's 60 KiB of request headers.
	DefaultIdentityHeadersMaxBytes = 8192
)

// Defaults of issuers[].introspection and of cache.introspection.
const (
	DefaultIntrospectionCacheTTL         = time.Minute
	DefaultIntrospectionNegativeCacheTTL = 10 * time.Second
	DefaultIntrospectionTimeout          = 2 * time.Second
	DefaultIntrospectionCacheSize        = 10000
)

// DefaultRolesClaims suits Keycloak: realm roles by name, client roles as "<client-id>:<role>".
func DefaultRolesClaims() []string { return []string{"realm_access.roles", "resource_access"} }

// DefaultAudienceClaims are the claims an audience is read from (audience_claims).
func DefaultAudienceClaims() []string { return []string{"aud"} }

// DefaultAuthorizedPartyClaims are the claims an authorized party is read from (authorized_party_claims).
func DefaultAuthorizedPartyClaims() []string { return []string{"azp"} }

// DefaultTokenTypes are the accepted `typ` values (claim or header) of an access token.
func DefaultTokenTypes() []string { return []string{"Bearer", "at+jwt"} }

// DefaultTokenSources is where a token is looked for when tokens.sources is left out.
func DefaultTokenSources() []TokenSource {
	return []TokenSource{{Header: "authorization", Prefix: "Bearer "}}
}

// DefaultIdentityHeaders maps upstream header names to claims; "roles" is the merged role list.
func DefaultIdentityHeaders() map[string]string {
	return map[string]string{
		"x-user-id":     "sub",
		"x-user-name":   "preferred_username",
		"x-user-email":  "email",
		"x-user-roles":  "roles",
		"x-user-issuer": "iss",
	}
}

// applyDefaults gives every key the file leaves out its default: it is the one place defaults
// are applied. A value written in the file is kept, even a zero one (`leeway: 0s`,
// `http_addr: ""`, `cache.tokens: 0`); an issuer's algorithms, roles_claims, token_types,
// audience_claims and authorized_party_claims take their default when empty too.
func (c *Config) applyDefaults(w written) {
	str := func(path string, dst *string, def string) {
		if !w[path] {
			*dst = def
		}
	}
	str("server.grpc_addr", &c.Server.GRPCAddr, DefaultGRPCAddr)
	str("server.http_addr", &c.Server.HTTPAddr, DefaultHTTPAddr)
	str("server.admin_addr", &c.Server.AdminAddr, DefaultAdminAddr)
	str("paths.matrix_parameters", &c.Paths.MatrixParameters, MatrixParametersReject)
	if !w["tokens.sources"] {
		c.Tokens.Sources = DefaultTokenSources()
	}
	if !w["tokens.max_bytes"] {
		c.Tokens.MaxBytes = DefaultMaxTokenBytes
	}
	if c.IdentityHeaders == nil {
		c.IdentityHeaders = DefaultIdentityHeaders()
	}
	if !w["identity_headers_max_bytes"] {
		c.IdentityHeadersMaxBytes = DefaultIdentityHeadersMaxBytes
	}
	if !w["forward_token"] {
		c.ForwardToken = true
	}
	if !w["cache.tokens"] {
		c.Cache.Tokens = DefaultTokenCacheSize
	}
	if !w["cache.introspection"] {
		c.Cache.Introspection = DefaultIntrospectionCacheSize
	}
	if !w["dpop.max_age"] {
		c.DPoP.MaxAge = DefaultDPoPMaxAge
	}
	if !w["forward_auth.trusted_headers"] {
		c.ForwardAuth.TrustedHeaders = []string{ConventionXForwarded, ConventionXOriginal}
	}
	for i := range c.Issuers {
		is := &c.Issuers[i]
		p := fmt.Sprintf("issuers[%d].", i)
		dur := func(key string, dst *time.Duration, def time.Duration) {
			if !w[p+key] {
				*dst = def
			}
		}
		dur("leeway", &is.Leeway, DefaultLeeway)
		dur("refresh_interval", &is.RefreshInterval, DefaultRefreshInterval)
		dur("min_refresh_interval", &is.MinRefreshInterval, DefaultMinRefreshInterval)
		if in := is.Introspection; in != nil {
			dur("introspection.cache_ttl", &in.CacheTTL, DefaultIntrospectionCacheTTL)
			dur("introspection.negative_cache_ttl", &in.NegativeCacheTTL, DefaultIntrospectionNegativeCacheTTL)
			dur("introspection.timeout", &in.Timeout, DefaultIntrospectionTimeout)
		}
		if len(is.Algorithms) == 0 {
			is.Algorithms = token.DefaultAlgorithms()
		}
		if len(is.RolesClaims) == 0 {
			is.RolesClaims = DefaultRolesClaims()
		}
		if len(is.TokenTypes) == 0 {
			is.TokenTypes = DefaultTokenTypes()
		}
		if len(is.AudienceClaims) == 0 {
			is.AudienceClaims = DefaultAudienceClaims()
		}
		if len(is.AuthorizedPartyClaims) == 0 {
			is.AuthorizedPartyClaims = DefaultAuthorizedPartyClaims()
		}
	}
}
