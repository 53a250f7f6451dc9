package authz

import (
	"encoding/json"
	"log/slog"
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
	// key is the token's cache key (tokenKey), when hasKey: an introspection reuses it.
	key    [32]byte
	hasKey bool
}

// render builds the engine's view of a verified identity.
func (e *Engine) render(id *token.Identity) *identity {
	ci := &identity{id: id, principal: rules.Principal{Roles: id.Roles, Scopes: id.Scopes, Claims: id.Claims},
		roles: strings.Join(id.Roles, ",")}
	ci.upstream = make([]Header, 0, len(e.identity))
	for _, h := range e.identity {
		v, ok := identityValue(id, h.value, ci.roles)
		if ok && len(v) > e.maxHeaderBytes {
			// Left out rather than truncated; the value is never logged (it is the token's).
			e.log.Warn("identity header not sent: its value is larger than identity_headers_max_bytes",
				slog.String("header", h.name), slog.Int("bytes", len(v)), slog.Int("max_bytes", e.maxHeaderBytes))
			ok = false
		}
		if ok {
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

// DefaultIdentityHeaderMaxBytes bounds one identity header's value when Options leave it 0
// (the default of identity_headers_max_bytes).
const DefaultIdentityHeaderMaxBytes = 8192

// identityValue renders a claim as a header value. Strings are sent as they are, numbers and
// booleans in their JSON form, lists of those joined with commas; objects and values with
// control characters are left out (and so removed upstream). The size bound is the caller's.
func identityValue(id *token.Identity, a token.Attribute, roles string) (string, bool) {
	var v string
	switch a.Field() {
	case token.FieldPayload:
		v = id.Payload
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
	if v == "" || !safeHeaderValue(v) {
		return "", false
	}
	return v, true
}

// scalarString renders a string as it is, and a number or boolean in its JSON form (true,
// 42, 1.5, 1e+21: as encoding/json writes the decoded value).
func scalarString(c any) (string, bool) {
	switch c := c.(type) {
	case string:
		return c, true
	case bool, float64:
		b, err := json.Marshal(c)
		return string(b), err == nil
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
