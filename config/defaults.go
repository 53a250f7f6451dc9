package config

import (
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults, as docs/configuration.md lists them.
const (
	DefaultGRPCAddr           = ":9191"
	DefaultHTTPAddr           = ":9192"
	DefaultAdminAddr          = ":9090"
	DefaultLeeway             = 30 * time.Second
	DefaultRefreshInterval    = 15 * time.Minute
	DefaultMinRefreshInterval = 10 * time.Second
	DefaultMaxTokenBytes      = 16384
	DefaultTokenCacheSize     = 10000
)

// DefaultAlgorithms is the asymmetric allow-list used when an issuer names none. HMAC and
// "none" are never accepted: Portcullis only verifies with an issuer's published public keys.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// DefaultRolesClaims suits Keycloak: realm roles by name, client roles as "<client-id>:<role>".
var DefaultRolesClaims = []string{"realm_access.roles", "resource_access"}

// DefaultTokenTypes are the accepted `typ` values (claim or header) of an access token.
var DefaultTokenTypes = []string{"Bearer", "at+jwt"}

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

// defaults returns a configuration holding every top-level default; decoding on top of it
// replaces only what the file sets.
func defaults() Config {
	return Config{
		Server: Server{GRPCAddr: DefaultGRPCAddr, HTTPAddr: DefaultHTTPAddr, AdminAddr: DefaultAdminAddr},
		Tokens: Tokens{
			Sources:  []TokenSource{{Header: "authorization", Prefix: "Bearer "}},
			MaxBytes: DefaultMaxTokenBytes,
		},
		ForwardAuth: ForwardAuth{TrustedHeaders: []string{ConventionXForwarded, ConventionXOriginal}},
		Paths:       Paths{MatrixParameters: MatrixParametersReject},
	}
}

func defaultIssuer() Issuer {
	return Issuer{
		Leeway:             DefaultLeeway,
		RefreshInterval:    DefaultRefreshInterval,
		MinRefreshInterval: DefaultMinRefreshInterval,
	}
}

// UnmarshalYAML fills an issuer's defaults before decoding it, so that a value written in the
// file (even a zero such as `leeway: 0s`) is kept and an absent one gets its default.
func (i *Issuer) UnmarshalYAML(n *yaml.Node) error {
	type plain Issuer
	p := plain(defaultIssuer())
	if err := n.Decode(&p); err != nil {
		return err
	}
	*i = Issuer(p)
	return nil
}
