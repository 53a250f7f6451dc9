package token

import (
	"fmt"
	"strings"
)

// ClaimPath addresses one claim of a token's payload. Rules' claim requirements, identity headers,
// an issuer's roles_claims and the claims a cached identity keeps all address claims with it,
// so the same name means the same claim everywhere. Compile it once with CompileClaimPath.
//
// Lookup finds a name in this order, and the first value found wins:
//
//  1. the whole name as a key of the claims object. Claim names may contain dots: Auth0's
//     namespaced claims ("https://example.com/tier") are top-level keys.
//  2. otherwise the name is cut at its first dot; when the part before it names an object, the
//     rest is looked up inside that object by this same order; otherwise, or when the rest is
//     not found there, the name is cut at its second dot, and so on to the last dot.
//
// So "realm_access.roles" is claims["realm_access"]["roles"], and "kubernetes.io.namespace" is
// claims["kubernetes.io"]["namespace"] (after "kubernetes.io.namespace" and "kubernetes" were
// tried and found absent). A path never enters an array: an array is a value, found or not as a
// whole. A value that is not an object midway ends that cut, not the search.
//
// The zero ClaimPath finds nothing.
type ClaimPath struct {
	name string
	dots []int // the byte offsets of the dots in name
}

// CompileClaimPath compiles a claim name or dotted path. The name must be non-empty, and no part
// between dots may be empty (no leading, trailing or doubled dot). The error does not name the
// configuration field; the caller adds it.
func CompileClaimPath(name string) (ClaimPath, error) {
	if name == "" || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, "..") {
		return ClaimPath{}, fmt.Errorf("%q is not a claim name or dotted path (write e.g. email_verified or realm_access.roles)", name)
	}
	p := ClaimPath{name: name}
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			p.dots = append(p.dots, i)
		}
	}
	return p, nil
}

// String returns the path as written.
func (p ClaimPath) String() string { return p.name }

// Lookup returns the claim the path addresses in claims (a decoded JSON object), in the order
// the type's documentation gives. It does not allocate.
func (p ClaimPath) Lookup(claims map[string]any) (any, bool) {
	if p.name == "" {
		return nil, false
	}
	return p.lookup(claims, 0, 0)
}

// lookup finds p.name[start:] in m; p.dots[k:] are the dots after start.
func (p ClaimPath) lookup(m map[string]any, start, k int) (any, bool) {
	if v, ok := m[p.name[start:]]; ok {
		return v, true
	}
	for ; k < len(p.dots); k++ {
		d := p.dots[k]
		if sub, ok := m[p.name[start:d]].(map[string]any); ok {
			if v, ok := p.lookup(sub, d+1, k+1); ok {
				return v, true
			}
		}
	}
	return nil, false
}

// TopLevel returns the top-level claims Lookup may read: the whole name, then the part before
// each dot ("a.b.c": "a.b.c", "a", "a.b"). Claims reduced to these top-level claims give Lookup
// the same answer as the whole claims.
func (p ClaimPath) TopLevel() []string {
	if p.name == "" {
		return nil
	}
	out := make([]string, 0, 1+len(p.dots))
	out = append(out, p.name)
	for _, d := range p.dots {
		out = append(out, p.name[:d])
	}
	return out
}

// Field says where an Attribute is read: a claim, or one of the Identity's own fields.
type Field uint8

// The fields an identity header may name. FieldClaim reads a claim at a ClaimPath; the others
// are the Identity's own fields, named by a reserved word.
const (
	FieldClaim   Field = iota // a claim at Attribute.Path
	FieldRoles                // "roles": Identity.Roles, merged from the issuer's roles_claims
	FieldScopes               // "scopes": Identity.Scopes, from scope or scp
	FieldSubject              // "sub": Identity.Subject
	FieldIssuer               // "iss": Identity.Issuer
	FieldPayload              // "payload": Identity.Payload, the whole verified payload as base64url JSON
)

// fieldNames are the reserved names, declared here only.
var fieldNames = map[string]Field{"roles": FieldRoles, "scopes": FieldScopes, "sub": FieldSubject, "iss": FieldIssuer, "payload": FieldPayload}

// Attribute is what an identity header carries: one of the Identity's own fields when its name
// is reserved (roles, scopes, sub, iss, payload), else the claim at a ClaimPath. Compile it once with
// CompileAttribute.
type Attribute struct {
	field Field
	path  ClaimPath
	name  string
}

// CompileAttribute compiles the name of an identity attribute: a reserved name or a claim path.
func CompileAttribute(name string) (Attribute, error) {
	if f, ok := fieldNames[name]; ok {
		return Attribute{field: f, name: name}, nil
	}
	p, err := CompileClaimPath(name)
	if err != nil {
		return Attribute{}, err
	}
	return Attribute{field: FieldClaim, path: p, name: name}, nil
}

// Field returns the Identity field the attribute reads; FieldClaim for a claim.
func (a Attribute) Field() Field { return a.field }

// Path returns the claim path of a FieldClaim attribute, and the zero ClaimPath otherwise.
func (a Attribute) Path() ClaimPath { return a.path }

// String returns the attribute's name as written.
func (a Attribute) String() string { return a.name }
