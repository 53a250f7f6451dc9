package authz

import (
	"strconv"
	"strings"

	"github.com/portcullis-authz/portcullis/rules"
	"github.com/portcullis-authz/portcullis/token"
)

// identityHeader maps an upstream header to what it carries (identity_headers).
type identityHeader struct {
	name  string
	value token.Attribute
}

// identity is a verified token rendered once for the engine: the rules' view of it and the
// identity headers it yields. It is immutable and shared by every decision served from it (the
// token cache keeps it).
type identity struct {
	id        *token.Identity
	principal rules.Principal
	upstream  []Header // identity headers set upstream on allow
	remove    []string // configured identity headers this identity does not carry
	roles     string   // the merged roles, comma-separated
}

// render builds the engine's view of a verified identity.
func (e *Engine) render(id *token.Identity) *identity {
	ci := &identity{id: id, principal: rules.Principal{Roles: id.Roles, Scopes: id.Scopes, Claims: id.Claims},
		roles: strings.Join(id.Roles, ",")}
	ci.upstream = make([]Header, 0, len(e.identity))
	for _, h := range e.identity {
		if v, ok := identityValue(id, h.value, ci.roles); ok {
			ci.upstream = append(ci.upstream, Header{h.name, v})
		} else {
			ci.remove = append(ci.remove, h.name)
		}
	}
	if h := e.sender.certHeader; h != "" {
		ci.remove = append(ci.remove, h) // a trusted client-certificate header never goes upstream
	}
	return ci
}

// maxHeaderValue bounds an identity header; a larger claim is left out rather than truncated.
const maxHeaderValue = 4096

// identityValue renders a claim as a header value. Lists become comma-separated; objects and
// values with control characters are left out (and so removed upstream).
func identityValue(id *token.Identity, a token.Attribute, roles string) (string, bool) {
	var v string
	switch a.Field() {
	case token.FieldRoles:
		if len(id.Roles) == 0 {
			return "", false
		}
		v = roles
	case token.FieldScopes:
		if len(id.Scopes) == 0 {
			return "", false
		}
		v = strings.Join(id.Scopes, ",")
	case token.FieldSubject:
		v = id.Subject
	case token.FieldIssuer:
		v = id.Issuer
	default:
		c, ok := a.Path().Lookup(id.Claims)
		if !ok {
			return "", false
		}
		if v, ok = scalarString(c); !ok {
			list, isList := c.([]any)
			if !isList {
				return "", false
			}
			parts := make([]string, 0, len(list))
			for _, x := range list {
				s, ok := scalarString(x)
				if !ok {
					return "", false
				}
				parts = append(parts, s)
			}
			v = strings.Join(parts, ",")
		}
	}
	if v == "" || len(v) > maxHeaderValue || !safeHeaderValue(v) {
		return "", false
	}
	return v, true
}

func scalarString(c any) (string, bool) {
	switch c := c.(type) {
	case string:
		return c, true
	case bool:
		return strconv.FormatBool(c), true
	case float64:
		return strconv.FormatFloat(c, 'f', -1, 64), true
	}
	return "", false
}

func safeHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
