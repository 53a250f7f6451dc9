package rules

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
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
	// reason.WrongAudience when the token's aud has none of require.audiences (401);
	// reason.Forbidden when a role, claim or `when` requirement is unmet or a `when` failed to
	// evaluate (403); reason.InsufficientScope when everything else holds and a scope is
	// missing (403 with error="insufficient_scope", RFC 6750 §3.1). Its answer is its row of
	// the reason table.
	Reason reason.Code
	// Missing describes every unmet requirement, in the order of the rule's require block
	// (any_roles, all_roles, scopes, claims by key, when, any_of): `role "admin"`, `one of
	// roles "a", "b"`, `scope "orders:write"`, `claim email_verified = true`, `condition
	// "claims.tenant_id == params.tenant" is false (claims.tenant_id = "acme", params.tenant =
	// "globex")`, `no alternative of require.any_of holds: [0] role "admin"; [1] ...`. A
	// condition's values are those it read; secret headers are never shown. For logs and
	// `portcullis check`.
	Missing []string
	// MissingScopes are the unmet scopes themselves, for WWW-Authenticate's scope parameter.
	MissingScopes []string
	// Errors are the `when` conditions that failed to evaluate (each denies, or makes its
	// any_of alternative not hold), for the caller to log.
	Errors []ConditionError
}

// ConditionError is a `when` expression that failed to evaluate on a request: a missing key,
// a type error, the run-time cost limit.
type ConditionError struct {
	// Rule is the rule's name; Field the expression's place in the configuration, such as
	// "rules[3].require.any_of[1].when".
	Rule, Field string
	// Err is CEL's error.
	Err error
}

// Error returns "rules[3].require.when (rule \"tenant-orders\"): no such key: tenant_id".
func (e ConditionError) Error() string {
	return fmt.Sprintf("%s (rule %q): %v", e.Field, e.Rule, e.Err)
}

// Check applies the rule's requirements to an authenticated principal and the request in
// (which `when` conditions read; nil reads as an empty request). A token whose aud has none
// of require.audiences gives reason.WrongAudience. Otherwise unmet roles, claims or
// conditions give reason.Forbidden, and so does a condition that fails to evaluate (never an
// allow); otherwise unmet scopes give reason.InsufficientScope (a token with the right scopes
// would pass, so the client may ask for them). An any_of holds when one of its alternatives
// holds entirely; when none does but one lacks only scopes, its scopes are the missing ones.
// A rule without requirements accepts any principal; a nil principal is refused. Missing lists
// every unmet requirement either way. Check allocates only when a requirement is unmet or
// the rule has a `when`.
func (r *Rule) Check(p *Principal, in *Input) Outcome {
	if p == nil {
		return Outcome{Reason: reason.Forbidden, Missing: []string{"an authenticated principal"}}
	}
	if len(r.audiences) > 0 && !audienceMet(p.Claims["aud"], r.audiences) {
		return Outcome{Reason: reason.WrongAudience, Missing: []string{r.audMissing}}
	}
	st := checkState{rule: r}
	if r.hasWhen {
		// Copies, so that neither the principal nor the input escapes to the heap (CEL's
		// interfaces hide that the activation does not outlive the evaluation).
		st.act = &activation{p: *p}
		if in != nil {
			st.act.in = *in
		}
	}
	v, missing, scopes := r.req.check(p, &st)
	out := Outcome{Reason: reason.OK, Missing: missing, MissingScopes: scopes, Errors: st.errs}
	switch v {
	case unmet:
		out.Reason = reason.Forbidden
	case scopesOnly:
		out.Reason = reason.InsufficientScope
	}
	return out
}

// block is one compiled requirement block: require itself, or an alternative of any_of.
type block struct {
	field      string // "require", "require.any_of[1]"
	anyRoles   []string
	anyMissing string // the Outcome.Missing text of unmet any_roles
	allRoles   []required
	scopes     []required
	claims     []claimReq
	when       *condition
	anyOf      []*block
}

// verdict is how a block fared, in increasing order of severity.
type verdict uint8

const (
	held       verdict = iota
	scopesOnly         // only scopes are missing
	unmet
)

type checkState struct {
	rule *Rule
	act  *activation // when the rule has a condition
	errs []ConditionError
}

// check applies the block; missing and scopes are nil when it holds.
func (b *block) check(p *Principal, st *checkState) (v verdict, missing, scopes []string) {
	if len(b.anyRoles) > 0 && !slices.ContainsFunc(p.Roles, func(r string) bool { return slices.Contains(b.anyRoles, r) }) {
		missing = append(missing, b.anyMissing)
		v = unmet
	}
	for _, q := range b.allRoles {
		if !slices.Contains(p.Roles, q.value) {
			missing = append(missing, q.missing)
			v = unmet
		}
	}
	for _, q := range b.scopes {
		if !slices.Contains(p.Scopes, q.value) {
			missing = append(missing, q.missing)
			scopes = append(scopes, q.value)
			v = max(v, scopesOnly)
		}
	}
	for i := range b.claims {
		if !b.claims[i].met(p.Claims) {
			missing = append(missing, b.claims[i].missing)
			v = unmet
		}
	}
	if c := b.when; c != nil {
		a := st.act
		ok, err := c.eval(a)
		switch {
		case err != nil:
			st.errs = append(st.errs, ConditionError{Rule: st.rule.Name(), Field: c.field, Err: err})
			missing = append(missing, fmt.Sprintf("condition %q could not be evaluated: %v (%s)", c.expr, err, c.saw(a)))
			v = unmet
		case !ok:
			missing = append(missing, fmt.Sprintf("condition %q is false (%s)", c.expr, c.saw(a)))
			v = unmet
		}
	}
	if len(b.anyOf) > 0 {
		best := unmet
		var bestScopes, alts []string
		for i, alt := range b.anyOf {
			av, am, as := alt.check(p, st)
			if av == held {
				best = held
				break
			}
			if av == scopesOnly && best == unmet {
				best, bestScopes = scopesOnly, as
			}
			alts = append(alts, fmt.Sprintf("[%d] %s", i, strings.Join(am, ", ")))
		}
		if best != held {
			missing = append(missing, "no alternative of "+b.field+".any_of holds: "+strings.Join(alts, "; "))
			scopes = append(scopes, bestScopes...)
			v = max(v, best)
		}
	}
	return v, missing, scopes
}

// audienceMet reports whether the aud claim (a string or an array of strings) holds one of want.
func audienceMet(aud any, want []string) bool {
	switch a := aud.(type) {
	case string:
		return slices.Contains(want, a)
	case []string:
		return slices.ContainsFunc(a, func(s string) bool { return slices.Contains(want, s) })
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok && slices.Contains(want, s) {
				return true
			}
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

// ClaimPaths returns the claim paths the rules read (claim requirements, the claims a `when`
// selects by constant keys, aud for require.audiences), each once, in rule order. A verifier
// keeps just the top-level claims these paths may read (token.Options.KeepClaims), unless
// ReadsAllClaims.
func (s *Set) ClaimPaths() []token.ClaimPath {
	if s == nil {
		return nil
	}
	seen := map[string]bool{}
	var paths []token.ClaimPath
	add := func(p token.ClaimPath) {
		if name := p.String(); !seen[name] {
			seen[name] = true
			paths = append(paths, p)
		}
	}
	for _, r := range s.rules {
		if len(r.audiences) > 0 {
			aud, _ := token.CompileClaimPath("aud")
			add(aud)
		}
		r.req.walk(func(b *block) {
			for _, c := range b.claims {
				add(c.path)
			}
			if b.when == nil {
				return
			}
			for _, ref := range b.when.refs {
				if ref.root != "claims" || len(ref.keys) == 0 {
					continue
				}
				if p, err := token.CompileClaimPath(ref.keys[0]); err == nil {
					add(p) // its TopLevel includes the whole key
				}
			}
		})
	}
	return paths
}

// ReadsAllClaims reports whether some `when` reads the claims in a way ClaimPaths cannot name
// (the whole map, a computed key, a key that is not a claim path): a verifier must then keep
// every claim.
func (s *Set) ReadsAllClaims() bool {
	if s == nil {
		return false
	}
	all := false
	for _, r := range s.rules {
		r.req.walk(func(b *block) {
			if b.when == nil {
				return
			}
			for _, ref := range b.when.refs {
				if ref.root != "claims" {
					continue
				}
				if len(ref.keys) == 0 {
					all = true
				} else if _, err := token.CompileClaimPath(ref.keys[0]); err != nil {
					all = true
				}
			}
		})
	}
	return all
}

// walk calls f on the block and every nested alternative.
func (b *block) walk(f func(*block)) {
	f(b)
	for _, alt := range b.anyOf {
		alt.walk(f)
	}
}
