package rules

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Principal is what a verified token proves, as the rules see it.
type Principal struct {
	Roles  []string       // merged roles; Keycloak client roles as "<client>:<role>"
	Scopes []string       // from the `scope` or `scp` claim
	Claims map[string]any // the token's claims as decoded from JSON
}

// Verdict is the result of a requirement check.
type Verdict int

// Verdicts of Rule.Check.
const (
	VerdictOK                Verdict = iota // every requirement met
	VerdictForbidden                        // a role or claim requirement unmet (403)
	VerdictInsufficientScope                // roles and claims met, a scope missing (403 insufficient_scope)
)

// Outcome is a verdict with what was missing.
type Outcome struct {
	Verdict Verdict
	// Missing describes each unmet requirement: `role "admin"`, `scope "orders:write"`,
	// `claim email_verified = true`.
	Missing []string
	// MissingScopes are the unmet scopes, for WWW-Authenticate's scope parameter.
	MissingScopes []string
}

// claimReq is one claim requirement: the value at a dotted path must equal want (or, for an
// array claim, contain it).
type claimReq struct {
	name string
	path []string
	want any // string, bool or float64
}

func compileClaim(name string, v any) (claimReq, error) {
	if name == "" || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, "..") {
		return claimReq{}, fmt.Errorf("%q is not a claim path (write e.g. email_verified or realm_access.roles)", name)
	}
	c := claimReq{name: name, path: strings.Split(name, ".")}
	switch v := v.(type) {
	case string, bool:
		c.want = v
	case int:
		c.want = float64(v)
	case int64:
		c.want = float64(v)
	case uint64:
		c.want = float64(v)
	case float64:
		c.want = v
	case nil:
		return claimReq{}, fmt.Errorf("no value given; write the value the claim must have")
	default:
		return claimReq{}, fmt.Errorf("must be a string, number or boolean, not a list or mapping")
	}
	return c, nil
}

func (c claimReq) String() string {
	switch w := c.want.(type) {
	case string:
		return fmt.Sprintf("claim %s = %q", c.name, w)
	case float64:
		return fmt.Sprintf("claim %s = %s", c.name, strconv.FormatFloat(w, 'f', -1, 64))
	default:
		return fmt.Sprintf("claim %s = %v", c.name, w)
	}
}

func (c claimReq) met(claims map[string]any) bool {
	var cur any = claims
	for _, p := range c.path {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[p]; !ok {
			return false
		}
	}
	if list, ok := cur.([]any); ok {
		for _, x := range list {
			if equalScalar(x, c.want) {
				return true
			}
		}
		return false
	}
	return equalScalar(cur, c.want)
}

func equalScalar(have, want any) bool {
	switch w := want.(type) {
	case float64:
		h, ok := have.(float64)
		return ok && !math.IsNaN(h) && h == w
	default:
		return have == want
	}
}

// Check applies the rule's requirements to a principal. Roles and claims are checked first
// (unmet: Forbidden); then scopes (unmet: InsufficientScope). A rule without requirements
// accepts any principal.
func (r *Rule) Check(p *Principal) Outcome {
	var out Outcome
	req := &r.spec.Require
	if len(req.AnyRoles) > 0 {
		found := false
		for _, want := range req.AnyRoles {
			if contains(p.Roles, want) {
				found = true
				break
			}
		}
		if !found {
			out.Missing = append(out.Missing, "one of roles "+quoteList(req.AnyRoles))
		}
	}
	for _, want := range req.AllRoles {
		if !contains(p.Roles, want) {
			out.Missing = append(out.Missing, strconv.Quote(want)+" role")
		}
	}
	for _, c := range r.claims {
		if !c.met(p.Claims) {
			out.Missing = append(out.Missing, c.String())
		}
	}
	if len(out.Missing) > 0 {
		out.Verdict = VerdictForbidden
		return out
	}
	for _, want := range req.Scopes {
		if !contains(p.Scopes, want) {
			out.Missing = append(out.Missing, "scope "+strconv.Quote(want))
			out.MissingScopes = append(out.MissingScopes, want)
		}
	}
	if len(out.MissingScopes) > 0 {
		out.Verdict = VerdictInsufficientScope
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, " ") + "]"
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ClaimNames returns the top-level claim names the rules' claim requirements read, sorted and
// without duplicates (so a verifier can keep just those).
func (s *Set) ClaimNames() []string {
	seen := map[string]bool{}
	var names []string
	for _, r := range s.rules {
		for _, c := range r.claims {
			if !seen[c.path[0]] {
				seen[c.path[0]] = true
				names = append(names, c.path[0])
			}
		}
	}
	sort.Strings(names)
	return names
}
