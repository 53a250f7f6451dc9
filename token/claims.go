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
	// Payload is the verified payload (the token's claims as the issuer signed them), base64url
	// without padding, as Envoy's jwt_authn forward_payload_header sends it; "" unless
	// Options.KeepPayload is set.
	Payload string
	// KeyThumbprint names the key that verified the token (RFC 7638), so that a cached
	// identity can be dropped when its key leaves the issuer's set.
	KeyThumbprint string
	// Introspected is set when the identity is an introspection answer's (an opaque token,
	// Verifier.Introspected): no key verified it, so KeyThumbprint is empty and Fresh is
	// false; its freshness is the introspection cache's.
	Introspected bool
	// Confirmation is the token's `cnf` claim (RFC 7800): the key or certificate it is bound
	// to, if any (cnf.go).
	Confirmation Confirmation
}

// claims holds the scanned payload and the registered claims read from it.
type claims struct {
	p                      payload
	iss, sub, azp, typ     string
	aud                    []string
	exp, nbf, iat          time.Time
	hasExp, hasNbf, hasIat bool
	hasTyp                 bool
}

// readRegistered reads the registered claims with their required types.
func (c *claims) readRegistered() *Error {
	for _, name := range [...]string{"iss", "sub", "azp", "typ"} {
		raw, ok := c.p.get(name)
		if !ok {
			continue
		}
		if raw[0] != '"' {
			return refuse(reason.InvalidToken, "the %s claim is not a string", name)
		}
		s := decodeString(raw)
		switch name {
		case "iss":
			c.iss = s
		case "sub":
			c.sub = s
		case "azp":
			c.azp = s
		default:
			c.typ = s
		}
	}
	c.hasTyp = c.p.has("typ")
	if c.iss == "" {
		return refuse(reason.InvalidToken, "the iss claim is missing")
	}
	if raw, ok := c.p.get("aud"); ok {
		switch raw[0] {
		case 'n':
		case '"':
			c.aud = []string{decodeString(raw)}
		case '[':
			it := newArrayIter(raw)
			for x, ok := it.next(); ok; x, ok = it.next() {
				if x[0] != '"' {
					return refuse(reason.InvalidToken, "the aud claim holds a non-string value")
				}
				c.aud = append(c.aud, decodeString(x))
			}
		default:
			return refuse(reason.InvalidToken, "the aud claim is neither a string nor an array of strings")
		}
	}
	var err *Error
	c.exp, c.hasExp, err = c.numericDate("exp")
	if err == nil {
		c.nbf, c.hasNbf, err = c.numericDate("nbf")
	}
	if err == nil {
		c.iat, c.hasIat, err = c.numericDate("iat")
	}
	return err
}

// numericDate reads a NumericDate claim when it is present.
func (c *claims) numericDate(name string) (time.Time, bool, *Error) {
	raw, ok := c.p.get(name)
	if !ok {
		return time.Time{}, false, nil
	}
	t, ok := numericDate(raw)
	if !ok {
		return time.Time{}, false, refuse(reason.InvalidToken, "the %s claim is not a valid NumericDate", name)
	}
	return t, true, nil
}

// identity builds the Identity of a verified token. Claims holds the claims of keep (all of
// them when keep is nil), decoded now.
func (is *issuer) identity(c *claims, thumbprint string, keep map[string]bool) *Identity {
	n := len(c.p.members)
	if keep != nil {
		n = min(n, len(keep))
	}
	kept := make(map[string]any, n)
	for _, m := range c.p.members {
		if keep == nil || keep[string(m.name)] {
			kept[string(m.name)] = decodeAny(m.raw)
		}
	}
	id := &Identity{
		Subject:       c.sub,
		Issuer:        c.iss,
		Claims:        kept,
		ExpiresAt:     c.exp,
		KeyThumbprint: thumbprint,
		Roles:         rolesFromPayload(&c.p, is.RolesClaims),
		Scopes:        scopesFromPayload(&c.p),
	}
	if c.hasNbf {
		id.NotBefore = c.nbf
	}
	return id
}

// rolesFromPayload is rolesFrom on a scanned payload, decoding only the role names.
func rolesFromPayload(p *payload, paths []ClaimPath) []string {
	var roles []string
	for _, path := range paths {
		v, ok := path.lookupRaw(p)
		if !ok {
			continue
		}
		switch v[0] {
		case '[':
			roles = appendRawStrings(roles, false, nil, v)
		case '"':
			roles = append(roles, strings.Fields(decodeString(v))...)
		case '{':
			it := newObjectIter(v)
			for client, entry, ok := it.next(); ok; client, entry, ok = it.next() {
				if entry[0] != '{' {
					continue
				}
				if list, ok := objectGet(entry, "roles"); ok && list[0] == '[' {
					roles = appendRawStrings(roles, true, client, list)
				}
			}
		}
	}
	return sortedUnique(roles)
}

// appendRawStrings is appendStrings on an array as written: its non-empty strings, each as
// "<client>:<string>" when prefixed.
func appendRawStrings(dst []string, prefixed bool, client []byte, list []byte) []string {
	it := newArrayIter(list)
	for x, ok := it.next(); ok; x, ok = it.next() {
		if x[0] != '"' || len(x) == 2 {
			continue
		}
		var s string
		if inner := x[1 : len(x)-1]; plainString(inner) {
			if prefixed {
				s = string(client) + ":" + string(inner)
			} else {
				s = string(inner)
			}
		} else if s = decodeString(x); s == "" {
			continue
		} else if prefixed {
			s = string(client) + ":" + s
		}
		dst = append(dst, s)
	}
	return dst
}

// scopesFromPayload is scopesFrom on a scanned payload.
func scopesFromPayload(p *payload) []string {
	for _, name := range scopeClaims {
		raw, ok := p.get(name)
		if !ok {
			continue
		}
		switch raw[0] {
		case '"':
			return strings.Fields(decodeString(raw))
		case '[':
			return appendRawStrings(nil, false, nil, raw)
		}
	}
	return nil
}

// sortedUnique sorts roles and drops duplicates, in place.
func sortedUnique(roles []string) []string {
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

// scopeClaims are where scopes are read, the first present winning: RFC 8693's and RFC 9068's
// space-separated `scope` (some issuers send a list), Entra's and Okta's `scp` (a string or a
// list), and `scopes`, which a few issuers use.
var scopeClaims = [...]string{"scope", "scp", "scopes"}
