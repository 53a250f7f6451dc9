package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/textproto"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-authz/portcullis/jwks"
	"github.com/portcullis-authz/portcullis/token"
)

// validate checks every key and the relations between keys of a decoded, defaulted
// configuration and returns the problems and the warnings. It changes nothing.
func (c *Config) validate() (errs, warns []string) {
	c.validateServer(&errs)
	c.validateIssuers(&errs, &warns)
	c.validateTokens(&errs)
	c.validateIdentityHeaders(&errs)
	c.validateForwardAuth(&errs)
	c.warnForwardToken(&warns)
	c.validatePaths(&errs)
	c.validateTracing(&errs)
	c.validateSender(&errs)
	c.validateIntrospection(&errs, &warns) // introspection.go
	if c.Cache.Introspection < 0 {
		errs = append(errs, fmt.Sprintf("cache.introspection: %d is negative; use 0 to turn the introspection cache off", c.Cache.Introspection))
	}
	if c.Cache.Tokens < 0 {
		errs = append(errs, fmt.Sprintf("cache.tokens: %d is negative; use 0 to turn the token cache off", c.Cache.Tokens))
	}
	if len(c.Rules) == 0 {
		errs = append(errs, "rules: no rules; every request would be denied with 403 (add at least one rule)")
	}
	return errs, warns
}

func (c *Config) validateServer(errs *[]string) {
	addrs := map[string]string{}
	for _, a := range []struct{ field, addr string }{
		{"server.grpc_addr", c.Server.GRPCAddr},
		{"server.http_addr", c.Server.HTTPAddr},
		{"server.admin_addr", c.Server.AdminAddr},
	} {
		if a.addr == "" {
			if a.field == "server.grpc_addr" {
				*errs = append(*errs, "server.grpc_addr: must be set (Envoy's ext_authz talks to it), e.g. \":9191\"")
			}
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			*errs = append(*errs, fmt.Sprintf("%s: %q is not host:port (write \":9191\" or \"127.0.0.1:9191\")", a.field, a.addr))
			continue
		}
		if _, port, _ := net.SplitHostPort(a.addr); port == "0" {
			continue // an ephemeral port is never shared
		}
		if other, dup := addrs[a.addr]; dup {
			*errs = append(*errs, fmt.Sprintf("%s: %q is already used by %s", a.field, a.addr, other))
		}
		addrs[a.addr] = a.field
	}
	t := c.Server.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		*errs = append(*errs, "server.tls: cert_file and key_file must be set together")
	}
	if t.ClientCAFile != "" && t.CertFile == "" {
		*errs = append(*errs, "server.tls.client_ca_file: mutual TLS needs cert_file and key_file too")
	}
	for field, f := range map[string]string{"cert_file": t.CertFile, "key_file": t.KeyFile, "client_ca_file": t.ClientCAFile} {
		checkReadable(errs, "server.tls."+field, f)
	}
}

func checkReadable(errs *[]string, field, path string) {
	if path == "" {
		return
	}
	if st, err := os.Stat(path); err != nil {
		*errs = append(*errs, fmt.Sprintf("%s: cannot read %q: %v", field, path, errors.Unwrap(err)))
	} else if st.IsDir() {
		*errs = append(*errs, fmt.Sprintf("%s: %q is a directory, not a file", field, path))
	}
}

func (c *Config) validateIssuers(errs, warns *[]string) {
	if len(c.Issuers) == 0 {
		*errs = append(*errs, "issuers: at least one issuer is needed")
	}
	seen := map[string]int{}
	supported := token.SupportedAlgorithms()
	for i := range c.Issuers {
		is := &c.Issuers[i]
		p := fmt.Sprintf("issuers[%d]", i)
		if is.Issuer == "" {
			*errs = append(*errs, p+".issuer: must be set to the exact `iss` of the tokens, e.g. https://sso.example.com/realms/demo")
		} else if !jwks.IsHTTPURL(strings.ReplaceAll(is.Issuer, token.TenantPlaceholder, "t")) {
			*errs = append(*errs, fmt.Sprintf("%s.issuer: %q is not an absolute http(s) URL%s", p, is.Issuer, schemeHint(is.Issuer)))
		} else if j, dup := seen[is.Issuer]; dup {
			*errs = append(*errs, fmt.Sprintf("%s.issuer: %q is already configured as issuers[%d]", p, is.Issuer, j))
		}
		seen[is.Issuer] = i
		template := token.IsTemplate(is.Issuer)
		if template {
			validateTemplate(errs, p+".issuer", is.Issuer)
		}
		for j, a := range is.IssuerAliases {
			ap := fmt.Sprintf("%s.issuer_aliases[%d]", p, j)
			switch k, dup := seen[a]; {
			case a == "":
				*errs = append(*errs, ap+": empty alias; write the other iss spelling, e.g. accounts.google.com")
			case dup:
				*errs = append(*errs, fmt.Sprintf("%s: %q is already configured as issuers[%d]", ap, a, k))
			case template && !token.IsTemplate(a):
				*errs = append(*errs, fmt.Sprintf("%s: %q has no %s; the issuer is a template, so its aliases are templates too (e.g. https://sts.windows.net/{tenantid}/)", ap, a, token.TenantPlaceholder))
			case !template && token.IsTemplate(a):
				*errs = append(*errs, fmt.Sprintf("%s: %q is a template but the issuer is not; put %s in the issuer too, or write the tenant id", ap, a, token.TenantPlaceholder))
			case template:
				validateTemplate(errs, ap, a)
			}
			seen[a] = i
		}
		switch {
		case template && len(is.Tenants) == 0 && !is.InsecureAnyTenant:
			*errs = append(*errs, fmt.Sprintf("%s.tenants: the issuer is a %s template, so list the tenant ids it accepts (Entra's tid), or set insecure_any_tenant: true to accept every tenant", p, token.TenantPlaceholder))
		case template && len(is.Tenants) > 0 && is.InsecureAnyTenant:
			*errs = append(*errs, p+": set tenants or insecure_any_tenant, not both")
		case !template && len(is.Tenants) > 0:
			*errs = append(*errs, fmt.Sprintf("%s.tenants: only a template issuer (with %s in its path) has tenants; write the tenant id in the issuer instead", p, token.TenantPlaceholder))
		case !template && is.InsecureAnyTenant:
			*errs = append(*errs, fmt.Sprintf("%s.insecure_any_tenant: only a template issuer (with %s in its path) has tenants", p, token.TenantPlaceholder))
		case is.InsecureAnyTenant:
			*warns = append(*warns, fmt.Sprintf("%s.insecure_any_tenant: INSECURE: every tenant of %s is accepted, so any organisation with an account there can mint tokens that pass; list your tenants instead", p, is.Issuer))
		}
		for j, tn := range is.Tenants {
			if tn == "" || strings.ContainsAny(tn, "/?#{}") {
				*errs = append(*errs, fmt.Sprintf("%s.tenants[%d]: %q is not a tenant id (one path segment, e.g. 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0)", p, j, tn))
			}
		}
		if template && is.JWKSURI == "" && is.JWKSFile == "" {
			*errs = append(*errs, fmt.Sprintf("%s.jwks_uri: a template issuer has no discovery document; set jwks_uri (Entra ID: https://login.microsoftonline.com/common/discovery/v2.0/keys) or jwks_file", p))
		}
		for _, cl := range []struct {
			key   string
			names []string
		}{{"audience_claims", is.AudienceClaims}, {"authorized_party_claims", is.AuthorizedPartyClaims}} {
			for j, name := range cl.names {
				switch {
				case name == "":
					*errs = append(*errs, fmt.Sprintf("%s.%s[%d]: empty claim name", p, cl.key, j))
				case slices.Index(cl.names, name) < j:
					*errs = append(*errs, fmt.Sprintf("%s.%s[%d]: %q is listed twice", p, cl.key, j, name))
				}
			}
		}
		if is.JWKSURI != "" && is.JWKSFile != "" {
			*errs = append(*errs, p+": set jwks_uri or jwks_file, not both")
		}
		if is.JWKSURI != "" && !jwks.IsHTTPURL(is.JWKSURI) {
			*errs = append(*errs, fmt.Sprintf("%s.jwks_uri: %q is not an absolute http(s) URL", p, is.JWKSURI))
		}
		checkReadable(errs, p+".jwks_file", is.JWKSFile)
		checkReadable(errs, p+".ca_file", is.CAFile)
		validateFetch(errs, p, is)
		switch {
		case len(is.Audiences) == 0:
			*warns = append(*warns, fmt.Sprintf("%s.audiences: empty, so the `aud` claim is not checked and any token of this issuer is accepted whatever service it was issued for; list your client id", p))
		case len(is.Audiences) == 1 && is.Audiences[0] == "account":
			*warns = append(*warns, fmt.Sprintf("%s.audiences: \"account\" is Keycloak's default audience, carried by every token of the realm; add an audience mapper in Keycloak and list your client id", p))
		}
		for j, a := range is.Audiences {
			if a == "" {
				*errs = append(*errs, fmt.Sprintf("%s.audiences[%d]: empty audience", p, j))
			}
		}
		for j, a := range is.Algorithms {
			switch {
			case slices.Contains(supported, a):
			case strings.EqualFold(a, "none"):
				*errs = append(*errs, fmt.Sprintf("%s.algorithms[%d]: \"none\" means unsigned tokens and is never accepted", p, j))
			case strings.HasPrefix(strings.ToUpper(a), "HS"):
				*errs = append(*errs, fmt.Sprintf("%s.algorithms[%d]: %q is a shared-secret algorithm; Portcullis verifies only with the issuer's public keys (use RS256, ES256, ...)", p, j, a))
			default:
				*errs = append(*errs, fmt.Sprintf("%s.algorithms[%d]: unknown algorithm %q; choose from %s", p, j, a, strings.Join(supported, " ")))
			}
		}
		if is.Leeway > 5*time.Minute {
			*errs = append(*errs, fmt.Sprintf("%s.leeway: %s is more than 5m; fix the clocks instead (NTP)", p, is.Leeway))
		}
		if is.RefreshInterval <= 0 {
			*errs = append(*errs, p+".refresh_interval: must be positive, e.g. 15m")
		}
		if is.MinRefreshInterval <= 0 {
			*errs = append(*errs, p+".min_refresh_interval: must be positive, e.g. 10s")
		} else if is.MinRefreshInterval > is.RefreshInterval && is.RefreshInterval > 0 {
			*errs = append(*errs, fmt.Sprintf("%s.min_refresh_interval: %s is longer than refresh_interval %s", p, is.MinRefreshInterval, is.RefreshInterval))
		}
		for j, tt := range is.TokenTypes {
			switch strings.ToLower(tt) {
			case "id", "refresh", "offline", "logout":
				*errs = append(*errs, fmt.Sprintf("%s.token_types[%d]: %q tokens are not access tokens and must never be accepted as bearer tokens", p, j, tt))
			case "":
				*errs = append(*errs, fmt.Sprintf("%s.token_types[%d]: empty token type", p, j))
			}
		}
	}
}

// validateFetch checks the settings of an issuer's discovery and key-set requests: the client
// certificate of mutual TLS and the proxy.
func validateFetch(errs *[]string, p string, is *Issuer) {
	if (is.ClientCertFile == "") != (is.ClientKeyFile == "") {
		*errs = append(*errs, p+": client_cert_file and client_key_file must be set together")
	}
	checkReadable(errs, p+".client_cert_file", is.ClientCertFile)
	checkReadable(errs, p+".client_key_file", is.ClientKeyFile)
	if is.ProxyURL != "" {
		u, err := url.Parse(is.ProxyURL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			shown := is.ProxyURL
			if err == nil {
				shown = u.Redacted()
			}
			*errs = append(*errs, fmt.Sprintf("%s.proxy_url: %q is not an http(s) URL; write the proxy as http://proxy.example.com:3128 (or https://)", p, shown))
		case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
			*errs = append(*errs, fmt.Sprintf("%s.proxy_url: %q has a path, query or fragment; a proxy is only scheme://host:port", p, u.Redacted()))
		}
	}
	// With jwks_file the keys are never fetched; the settings still serve introspection.
	if is.JWKSFile != "" && is.Introspection == nil {
		for _, f := range []struct{ key, value string }{{"client_cert_file", is.ClientCertFile}, {"proxy_url", is.ProxyURL}} {
			if f.value != "" {
				*errs = append(*errs, fmt.Sprintf("%s.%s: the keys come from jwks_file and are never fetched, and the issuer has no introspection; remove %s", p, f.key, f.key))
			}
		}
	}
}

// validateTemplate checks that a template spelling holds TenantPlaceholder once, as one whole
// path segment.
func validateTemplate(errs *[]string, field, spelling string) {
	ok := strings.Count(spelling, token.TenantPlaceholder) == 1
	if ok {
		before, after, _ := strings.Cut(spelling, token.TenantPlaceholder)
		scheme := strings.Index(before, "://")
		ok = strings.HasSuffix(before, "/") && (scheme < 0 || strings.Contains(before[scheme+3:], "/")) && (after == "" || after[0] == '/')
	}
	if !ok {
		*errs = append(*errs, fmt.Sprintf("%s: %q: %s must be one whole path segment, once, e.g. https://login.microsoftonline.com/%s/v2.0", field, spelling, token.TenantPlaceholder, token.TenantPlaceholder))
	}
}

// schemeHint says what to do with an issuer written without a scheme.
func schemeHint(iss string) string {
	if strings.Contains(iss, "://") {
		return ""
	}
	return fmt.Sprintf("; write the issuer with its scheme (https://%s) and list other spellings of iss in issuer_aliases", iss)
}

func (c *Config) validateTokens(errs *[]string) {
	if len(c.Tokens.Sources) == 0 {
		*errs = append(*errs, "tokens.sources: at least one source is needed, e.g. {header: authorization, prefix: \"Bearer \"}")
	}
	for i, s := range c.Tokens.Sources {
		p := fmt.Sprintf("tokens.sources[%d]", i)
		switch {
		case s.Header != "" && s.Cookie != "":
			*errs = append(*errs, p+": set header or cookie, not both")
		case s.Header == "" && s.Cookie == "":
			*errs = append(*errs, p+": set header (with an optional prefix) or cookie")
		case s.Cookie != "" && s.Prefix != "":
			*errs = append(*errs, p+".prefix: only a header source has a prefix")
		case s.Header != "":
			if !validHeaderName(s.Header) {
				*errs = append(*errs, fmt.Sprintf("%s.header: %q is not a valid header name", p, s.Header))
			}
		case s.Cookie != "":
			if !validHeaderName(s.Cookie) {
				*errs = append(*errs, fmt.Sprintf("%s.cookie: %q is not a valid cookie name", p, s.Cookie))
			}
		}
	}
	if c.Tokens.MaxBytes < 512 || c.Tokens.MaxBytes > 1<<20 {
		*errs = append(*errs, fmt.Sprintf("tokens.max_bytes: %d is out of range; use 512 to 1048576 (default 16384)", c.Tokens.MaxBytes))
	}
}

func (c *Config) validateForwardAuth(errs *[]string) {
	seen := map[string]bool{}
	for i, h := range c.ForwardAuth.TrustedHeaders {
		p := fmt.Sprintf("forward_auth.trusted_headers[%d]", i)
		switch {
		case h != ConventionXForwarded && h != ConventionXOriginal:
			*errs = append(*errs, fmt.Sprintf("%s: %q is not a convention; use %q (Traefik, Caddy) or %q (nginx)", p, h, ConventionXForwarded, ConventionXOriginal))
		case seen[h]:
			*errs = append(*errs, fmt.Sprintf("%s: %q is listed twice", p, h))
		}
		seen[h] = true
	}
	if pp := c.ForwardAuth.PathPrefix; pp != "" && (!strings.HasPrefix(pp, "/") || strings.HasSuffix(pp, "/") || strings.ContainsAny(pp, "?#%")) {
		*errs = append(*errs, fmt.Sprintf("forward_auth.path_prefix: %q must start with \"/\" and not end with one, e.g. \"/authz\"", pp))
	}
}

// warnForwardToken warns that forward_token: false needs the proxy's help on the HTTP
// forward-auth front: its answer lists the token's header for removal in
// x-envoy-auth-headers-to-remove, which only Envoy's http_service honours, and returns the
// Cookie header without the token cookies, which the proxy must be told to copy.
func (c *Config) warnForwardToken(warns *[]string) {
	if c.ForwardToken || c.Server.HTTPAddr == "" {
		return
	}
	var nginx, caddy, traefik, cookies []string
	for _, s := range c.Tokens.Sources {
		if s.Cookie != "" {
			cookies = append(cookies, s.Cookie)
			continue
		}
		h := textproto.CanonicalMIMEHeaderKey(s.Header)
		nginx = append(nginx, fmt.Sprintf("proxy_set_header %s \"\";", h))
		caddy = append(caddy, "header_up -"+h)
		traefik = append(traefik, h+`: ""`)
	}
	w := "forward_token: false, and the HTTP forward-auth front (server.http_addr) is on: its answer cannot take the token off the upstream request by itself. Envoy's http_service removes the headers the answer lists in x-envoy-auth-headers-to-remove; nginx, Caddy and Traefik ignore that list"
	if len(nginx) > 0 {
		w += fmt.Sprintf(", so remove the token there: nginx %s in the proxied location; Caddy %s in reverse_proxy; Traefik a headers middleware after forwardAuth with customRequestHeaders %s",
			strings.Join(nginx, " "), strings.Join(caddy, ", "), strings.Join(traefik, ", "))
	}
	if len(cookies) > 0 {
		w += fmt.Sprintf("; the answer's Cookie header comes without the token cookie %s: have every proxy set it on the request (Envoy: cookie in allowed_upstream_headers)", strings.Join(cookies, ", "))
	}
	*warns = append(*warns, w+" (docs/configuration.md#forward_token)")
}

func (c *Config) validatePaths(errs *[]string) {
	switch m := c.Paths.MatrixParameters; m {
	case MatrixParametersReject, MatrixParametersStrip:
	default:
		*errs = append(*errs, fmt.Sprintf(`paths.matrix_parameters: %q is not a choice; use %q (the default: a ";" in a path segment is answered 400) or %q (";..." is removed from each segment before matching, as Tomcat, Jetty and Spring do)`, m, MatrixParametersReject, MatrixParametersStrip))
	}
}

// reservedHeaders may not be identity headers: rewriting them would change how the request is
// routed or framed, or would overwrite the credentials themselves.
var reservedHeaders = map[string]bool{
	"host": true, "authorization": true, "cookie": true, "content-length": true, "content-type": true,
	"transfer-encoding": true, "connection": true, "te": true, "upgrade": true, "proxy-authorization": true,
}

func (c *Config) validateIdentityHeaders(errs *[]string) {
	if n := c.IdentityHeadersMaxBytes; n < 256 || n > 65536 {
		*errs = append(*errs, fmt.Sprintf("identity_headers_max_bytes: %d is out of range; use 256 to 65536 (default %d)", n, DefaultIdentityHeadersMaxBytes))
	}
	names := slices.Sorted(maps.Keys(c.IdentityHeaders))
	tokenHeaders := map[string]bool{}
	for _, s := range c.Tokens.Sources {
		if s.Header != "" {
			tokenHeaders[s.Header] = true
		}
	}
	for _, name := range names { // lower-case already (normalise)
		claim := c.IdentityHeaders[name]
		p := "identity_headers." + name
		switch {
		case !validHeaderName(name):
			*errs = append(*errs, fmt.Sprintf("%s: not a valid header name", p))
		case reservedHeaders[name] || strings.HasPrefix(name, ":") || tokenHeaders[name]:
			*errs = append(*errs, fmt.Sprintf("%s: %q cannot carry identity (it is a request or token header); use a name such as x-user-id", p, name))
		case claim == "":
			*errs = append(*errs, fmt.Sprintf("%s: name the claim to copy, e.g. sub (or roles for the merged role list)", p))
		}
	}
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", ch) >= 0:
		default:
			return false
		}
	}
	return true
}

// compileClaims compiles the claim paths of identity_headers and of each issuer's roles_claims
// (token.ClaimPath: the same addressing the rules' claim requirements use).
func (c *Config) compileClaims(errs *[]string) (map[string]token.Attribute, [][]token.ClaimPath) {
	names := slices.Sorted(maps.Keys(c.IdentityHeaders))
	identity := make(map[string]token.Attribute, len(names))
	for _, name := range names {
		claim := c.IdentityHeaders[name]
		if claim == "" {
			continue // reported by validateIdentityHeaders
		}
		a, err := token.CompileAttribute(claim)
		if err != nil {
			*errs = append(*errs, fmt.Sprintf("identity_headers.%s: %v", name, err))
			continue
		}
		identity[name] = a
	}
	roles := make([][]token.ClaimPath, len(c.Issuers))
	for i, is := range c.Issuers {
		for j, rc := range is.RolesClaims {
			p, err := token.CompileClaimPath(rc)
			if err != nil {
				*errs = append(*errs, fmt.Sprintf("issuers[%d].roles_claims[%d]: %v", i, j, err))
				continue
			}
			roles[i] = append(roles[i], p)
		}
	}
	return identity, roles
}
