package rules

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/portcullis-authz/portcullis/reason"
	"github.com/portcullis-authz/portcullis/token"
)

// Principal is what a verified token proves, as the rules see it.
type Principal struct {
	// Roles are the merged roles; Keycloak client roles appear as "<client>:<role>".
	Roles []string
	// Scopes come from the space-separated `scope` claim or the `scp` array.
	Scopes []string
	// Claims are the token's claims as decoded from JSON: numbers float64 (json.Number is
	// accepted too), objects map[string]any, arrays []any.
	Claims map[string]any
}

// Outcome is what Rule.Check found, with what was missing.
type Outcome struct {
	// Reason is the decision reason: reason.OK when every requirement is met;
	// reason.Forbidden when a role or claim requirement is unmet (403);
	// reason.InsufficientScope when roles and claims are met and a scope is missing (403 with
	// error="insufficient_scope", RFC 6750 §3.1). Its answer is its row of the reason table.
	Reason reason.Code
	// Missing describes every unmet requirement, in the order of the rule's require block
	// (any_roles, all_roles, scopes, claims by key): `role "admin"`, `one of roles "a", "b"`,
	// `scope "orders:write"`, `claim email_verified = true`. For logs and `portcullis check`.
	Missing []string
	// MissingScopes are the unmet scopes themselves, for WWW-Authenticate's scope parameter.
	MissingScopes []string
}

// Check applies the rule's requirements to an authenticated principal. Unmet roles or claims
// give reason.Forbidden; otherwise unmet scopes give reason.InsufficientScope (a token with the
// right scopes would pass, so the client may ask for them). A rule without requirements accepts
// any principal; a nil principal is refused. Missing lists every unmet requirement either way.
// Check allocates only when a requirement is unmet.
func (r *Rule) Check(p *Principal) Outcome {
	if p == nil {
		return Outcome{Reason: reason.Forbidden, Missing: []string{"an authenticated principal"}}
	}
	out := Outcome{Reason: reason.OK}
	forbidden := false
	if len(r.anyRoles) > 0 && !containsAny(p.Roles, r.anyRoles) {
		out.Missing = append(out.Missing, r.anyMissing)
		forbidden = true
	}
	for _, q := range r.allRoles {
		if !slices.Contains(p.Roles, q.value) {
			out.Missing = append(out.Missing, q.missing)
			forbidden = true
		}
	}
	for _, q := range r.scopes {
		if !slices.Contains(p.Scopes, q.value) {
			out.Missing = append(out.Missing, q.missing)
			out.MissingScopes = append(out.MissingScopes, q.value)
		}
	}
	for i := range r.claims {
		if !r.claims[i].met(p.Claims) {
			out.Missing = append(out.Missing, r.claims[i].missing)
			forbidden = true
		}
	}
	switch {
	case forbidden:
		out.Reason = reason.Forbidden
	case len(out.MissingScopes) > 0:
		out.Reason = reason.InsufficientScope
	}
	return out
}

func containsAny(have, want []string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}

type claimKind uint8

const (
	claimString claimKind = iota
	claimBool
	claimNumber
)

// claimReq is one `claims` entry: the claim at path must equal the value, or, when it is an
// array, contain it.
type claimReq struct {
	path    token.ClaimPath
	kind    claimKind
	str     string
	boolean bool
	num     float64
	missing string // the Outcome.Missing text
}

// compileClaim validates one `claims` entry. The problem it returns is phrased for the user.
func compileClaim(key string, v any) (claimReq, string) {
	path, err := token.CompileClaimPath(key)
	if err != nil {
		return claimReq{}, err.Error()
	}
	c := claimReq{path: path}
	switch v := v.(type) {
	case string:
		c.kind, c.str = claimString, v
		c.missing = fmt.Sprintf("claim %s = %q", key, v)
		return c, ""
	case bool:
		c.kind, c.boolean = claimBool, v
		c.missing = fmt.Sprintf("claim %s = %t", key, v)
		return c, ""
	case nil:
		return claimReq{}, "no value; write the value the claim must equal (a string, number or boolean)"
	case []any:
		return claimReq{}, "a list is not a claim value; write one string, number or boolean (an array claim matches when it contains it)"
	case map[string]any:
		sub, first := "field", true
		for k := range v {
			if first || k < sub {
				sub, first = k, false
			}
		}
		return claimReq{}, fmt.Sprintf("a mapping is not a claim value; for a nested claim write a dotted key such as %q", key+"."+sub)
	case time.Time:
		return claimReq{}, fmt.Sprintf("a timestamp is not a claim value; quote it to compare it as a string (%q)", v.Format(time.DateOnly))
	}
	f, ok := toFloat(v)
	if !ok {
		return claimReq{}, fmt.Sprintf("a %T is not a claim value; write a string, number or boolean (quote it to make it a string)", v)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return claimReq{}, "NaN and infinities never equal a claim; write a finite number"
	}
	c.kind, c.num = claimNumber, f
	c.missing = fmt.Sprintf("claim %s = %s", key, strconv.FormatFloat(f, 'g', -1, 64))
	return c, ""
}

// met reports whether the claims satisfy the requirement.
func (c *claimReq) met(claims map[string]any) bool {
	v, ok := c.path.Lookup(claims)
	if !ok {
		return false
	}
	switch list := v.(type) {
	case []any:
		for _, x := range list {
			if c.equal(x) {
				return true
			}
		}
		return false
	case []string:
		if c.kind != claimString {
			return false
		}
		return slices.Contains(list, c.str)
	}
	return c.equal(v)
}

func (c *claimReq) equal(v any) bool {
	switch c.kind {
	case claimString:
		s, ok := v.(string)
		return ok && s == c.str
	case claimBool:
		b, ok := v.(bool)
		return ok && b == c.boolean
	}
	f, ok := toFloat(v)
	return ok && f == c.num
}

// toFloat converts the numbers that JSON and YAML decoders produce.
func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint:
		return float64(n), true
	case json.Number:
		f, err := strconv.ParseFloat(string(n), 64)
		return f, err == nil
	}
	return 0, false
}

// ClaimPaths returns the claim paths the rules' claim requirements read, each once, in rule
// order. A verifier keeps just the top-level claims these paths may read (token.Options.KeepClaims).
func (s *Set) ClaimPaths() []token.ClaimPath {
	if s == nil {
		return nil
	}
	seen := map[string]bool{}
	var paths []token.ClaimPath
	for _, r := range s.rules {
		for _, c := range r.claims {
			if name := c.path.String(); !seen[name] {
				seen[name] = true
				paths = append(paths, c.path)
			}
		}
	}
	return paths
}
