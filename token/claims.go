package token

import (
	"sort"
	"strings"
	"time"

	"github.com/portcullis-authz/portcullis/reason"
)

// Identity is what a verified token proves.
type Identity struct {
	Subject string
	Issuer  string // the token's iss as it is spelled (an alias, or a template's tenant spelling)
	// Tenant is the tenant in iss when the issuer is a {tenantid} template (equal to the
	// token's tid), "" otherwise.
	Tenant    string
	Roles     []string // merged from the issuer's roles_claims; client roles as "<client>:<role>"
	Scopes    []string // from `scope` (space-separated) or `scp` (array)
	Claims    map[string]any
	ExpiresAt time.Time
	NotBefore time.Time // zero when the token has no nbf
	// KeyThumbprint names the key that verified the token (RFC 7638), so that a cached
	// identity can be dropped when its key leaves the issuer's set.
	KeyThumbprint string
	// Confirmation is the token's `cnf` claim (RFC 7800): the key or certificate it is bound
	// to, if any (cnf.go).
	Confirmation Confirmation
}

// claims holds the decoded payload and the registered claims read from it.
type claims struct {
	all                    map[string]any
	iss, sub, azp, typ     string
	aud                    []string
	exp, nbf, iat          time.Time
	hasExp, hasNbf, hasIat bool
	hasTyp                 bool
}

// readRegistered reads the registered claims with their required types.
func (c *claims) readRegistered() *Error {
	str := func(name string, dst *string) *Error {
		v, ok := c.all[name]
		if !ok {
			return nil
		}
		s, ok := v.(string)
		if !ok {
			return refuse(reason.InvalidToken, "the %s claim is not a string", name)
		}
		*dst = s
		return nil
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"iss", &c.iss}, {"sub", &c.sub}, {"azp", &c.azp}, {"typ", &c.typ}} {
		if err := str(f.name, f.dst); err != nil {
			return err
		}
	}
	_, c.hasTyp = c.all["typ"]
	if c.iss == "" {
		return refuse(reason.InvalidToken, "the iss claim is missing")
	}
	switch a := c.all["aud"].(type) {
	case nil:
	case string:
		c.aud = []string{a}
	case []any:
		for _, x := range a {
			s, ok := x.(string)
			if !ok {
				return refuse(reason.InvalidToken, "the aud claim holds a non-string value")
			}
			c.aud = append(c.aud, s)
		}
	default:
		return refuse(reason.InvalidToken, "the aud claim is neither a string nor an array of strings")
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
		has  *bool
	}{{"exp", &c.exp, &c.hasExp}, {"nbf", &c.nbf, &c.hasNbf}, {"iat", &c.iat, &c.hasIat}} {
		v, ok := c.all[f.name]
		if !ok {
			continue
		}
		t, ok := numericDate(v)
		if !ok {
			return refuse(reason.InvalidToken, "the %s claim is not a valid NumericDate", f.name)
		}
		*f.dst, *f.has = t, true
	}
	return nil
}

// identity builds the Identity of a verified token.
func (is *issuer) identity(c *claims, thumbprint string, keep map[string]bool) *Identity {
	kept := c.all
	if keep != nil {
		kept = make(map[string]any, len(keep))
		for name := range keep {
			if v, ok := c.all[name]; ok {
				kept[name] = v
			}
		}
	}
	id := &Identity{
		Subject:       c.sub,
		Issuer:        c.iss,
		Claims:        kept,
		ExpiresAt:     c.exp,
		KeyThumbprint: thumbprint,
		Roles:         rolesFrom(c.all, is.RolesClaims),
		Scopes:        scopesFrom(c.all),
	}
	if c.hasNbf {
		id.NotBefore = c.nbf
	}
	return id
}

// rolesFrom merges the roles found at each path (looked up as ClaimPath documents). A list of
// strings gives plain role names; an object of clients each holding a `roles` list (Keycloak's
// resource_access) gives "<client>:<role>". The result is sorted and free of duplicates.
func rolesFrom(claims map[string]any, paths []ClaimPath) []string {
	var roles []string
	for _, p := range paths {
		v, ok := p.Lookup(claims)
		if !ok {
			continue
		}
		switch v := v.(type) {
		case []any:
			roles = appendStrings(roles, "", v)
		case string:
			roles = append(roles, strings.Fields(v)...)
		case map[string]any:
			for client, entry := range v {
				if e, ok := entry.(map[string]any); ok {
					if list, ok := e["roles"].([]any); ok {
						roles = appendStrings(roles, client+":", list)
					}
				}
			}
		}
	}
	if len(roles) < 2 {
		return roles
	}
	sort.Strings(roles)
	out := roles[:1]
	for _, r := range roles[1:] {
		if r != out[len(out)-1] {
			out = append(out, r)
		}
	}
	return out
}

func appendStrings(dst []string, prefix string, list []any) []string {
	for _, x := range list {
		if s, ok := x.(string); ok && s != "" {
			dst = append(dst, prefix+s)
		}
	}
	return dst
}

func scopesFrom(claims map[string]any) []string {
	for _, name := range scopeClaims {
		switch v := claims[name].(type) {
		case string:
			return strings.Fields(v)
		case []any:
			return appendStrings(nil, "", v)
		}
	}
	return nil
}

// scopeClaims are where scopes are read, the first present winning: RFC 8693's and RFC 9068's
// space-separated `scope` (some issuers send a list), Entra's and Okta's `scp` (a string or a
// list), and `scopes`, which a few issuers use.
var scopeClaims = [...]string{"scope", "scp", "scopes"}
