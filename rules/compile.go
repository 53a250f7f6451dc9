package rules

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/google/cel-go/cel"
)

// maxNameLen bounds a rule name, which goes into every log line and Envoy's metadata.
const maxNameLen = 128

// Set is a compiled rule set. It is immutable and safe for concurrent use. The zero Set and a
// nil *Set hold no rules.
type Set struct {
	rules    []*Rule
	byName   map[string]*Rule
	m        *matcher
	warnings []string
}

// Rule is one compiled rule.
type Rule struct {
	index   int
	spec    Spec
	hosts   []hostPattern
	methods methodSet
	paths   []pathPattern // none: every path
	pats    [][]segment   // the segments of paths, or of "/**" when there are none

	context      []contextReq // match.context, sorted by key
	req          block        // require
	audiences    []string
	audMissing   string   // the Outcome.Missing text of unmet audiences
	hasWhen      bool     // some block has a `when`: MatchRequest records the path's params
	hasParams    bool     // some path pattern has a "{name}" segment
	reads        varSet   // the variables its `when` conditions read
	unregistered []string // configured methods outside the IANA registry, for a warning
}

// contextReq is one match.context entry.
type contextReq struct {
	key, value string
}

// matchContext reports whether the context extensions hold every match.context entry.
func (r *Rule) matchContext(ctx map[string]string) bool {
	for _, c := range r.context {
		if v, ok := ctx[c.key]; !ok || v != c.value {
			return false
		}
	}
	return true
}

// required is one role or scope with its Outcome.Missing text.
type required struct {
	value, missing string
}

// Name returns the rule's name.
func (r *Rule) Name() string { return r.spec.Name }

// RequiresActive reports whether the rule requires the token to be active at its issuer
// (require.active: token introspection, after the signature).
func (r *Rule) RequiresActive() bool { return r.spec.Require.Active }

// Public reports whether the rule lets requests through without a token.
func (r *Rule) Public() bool { return r.spec.Public }

// DryRun reports whether the rule's decisions are only logged and counted, the request allowed.
func (r *Rule) DryRun() bool { return r.spec.DryRun }

// SenderConstrained reports whether the rule takes sender-constrained tokens only
// (require.sender_constrained): the engine checks the binding, the rule does not.
func (r *Rule) SenderConstrained() bool { return r.spec.Require.SenderConstrained }

// Spec returns a copy of the rule as configured.
func (r *Rule) Spec() Spec { return r.spec.clone() }

func (r *Rule) hasWildcardHost() bool {
	for _, h := range r.hosts {
		if h.kind == hostWildcard {
			return true
		}
	}
	return false
}

func (r *Rule) matchHost(h *reqHost) bool {
	if len(r.hosts) == 0 {
		return true
	}
	for i := range r.hosts {
		if r.hosts[i].match(h) {
			return true
		}
	}
	return false
}

// Len returns the number of rules.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// Rules returns the compiled rules in file order.
func (s *Set) Rules() []*Rule {
	if s == nil {
		return nil
	}
	return append([]*Rule(nil), s.rules...)
}

// Warnings returns what Compile found suspicious but not wrong: rules that can never match
// because earlier rules take all their requests, public rules that take some requests of a
// later protected rule, dry_run on a public rule, methods outside the IANA registry.
func (s *Set) Warnings() []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s.warnings...)
}

// Lookup returns the rule named name, or nil. Envoy's per-route context extension
// `portcullis-rule` names a rule this way.
func (s *Set) Lookup(name string) *Rule {
	if s == nil {
		return nil
	}
	return s.byName[name]
}

// Compile validates the rules and compiles them for matching, once at load. It reports every
// problem, not only the first: the error joins (errors.Join) one error per problem, each
// starting with its field path in the rules list and saying what to do, such as
//
//	rules[2].match.paths[0]: "api/x" must start with "/"
//	rules[1].name: "admin" is already used by rules[0]
//
// An empty list compiles to a Set that matches nothing.
func Compile(specs []Spec) (*Set, error) {
	s := &Set{byName: make(map[string]*Rule, len(specs))}
	var errs []error
	env := &lazyEnv{}
	for i := range specs {
		r, problems := compileRule(i, specs[i], env)
		errs = append(errs, problems...)
		if r.spec.Name != "" && validName(r.spec.Name) {
			if prev, dup := s.byName[r.spec.Name]; dup {
				errs = append(errs, fmt.Errorf("rules[%d].name: %q is already used by rules[%d]", i, r.spec.Name, prev.index))
			} else {
				s.byName[r.spec.Name] = r
			}
		}
		s.rules = append(s.rules, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.m = buildMatcher(s.rules)
	s.warnings = findWarnings(s.rules)
	return s, nil
}

// compileRule compiles one rule, returning its problems (field paths included).
func compileRule(i int, sp Spec, env *lazyEnv) (*Rule, []error) {
	r := &Rule{index: i, spec: sp.clone()}
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("rules[%d].%s: %s", i, field, fmt.Sprintf(format, args...)))
	}
	switch {
	case sp.Name == "":
		fail("name", "missing; every rule needs a unique name (letters, digits, \"-\", \"_\", \".\", \":\"), used in logs and Envoy metadata")
	case len(sp.Name) > maxNameLen:
		fail("name", "longer than %d bytes; use a shorter name", maxNameLen)
	case !validName(sp.Name):
		fail("name", "%q may use only letters, digits, \"-\", \"_\", \".\" and \":\"", sp.Name)
	}

	// match
	if emptyList(sp.Match.Hosts) {
		fail("match.hosts", "empty list; omit hosts to match every host")
	}
	seen := map[string]int{}
	for j, h := range sp.Match.Hosts {
		hp, problem := compileHost(h)
		if problem != "" {
			fail(fmt.Sprintf("match.hosts[%d]", j), "%s", problem)
			continue
		}
		if k, dup := seen[hp.key()]; dup {
			fail(fmt.Sprintf("match.hosts[%d]", j), "%q is the same host as hosts[%d]; remove one", h, k)
			continue
		}
		seen[hp.key()] = j
		r.hosts = append(r.hosts, hp)
	}

	if emptyList(sp.Match.Methods) {
		fail("match.methods", "empty list; omit methods to match every method")
	}
	r.methods.all = len(sp.Match.Methods) == 0
	clear(seen)
	for j, m := range sp.Match.Methods {
		problem, registered := checkMethod(m)
		if problem != "" {
			fail(fmt.Sprintf("match.methods[%d]", j), "%s", problem)
			continue
		}
		if k, dup := seen[m]; dup {
			fail(fmt.Sprintf("match.methods[%d]", j), "%q is already listed at methods[%d]; remove one", m, k)
			continue
		}
		seen[m] = j
		if bit := standardBit(m); bit != 0 {
			r.methods.bits |= bit
		} else {
			r.methods.ext = append(r.methods.ext, m)
			if !registered {
				r.unregistered = append(r.unregistered, m)
			}
		}
	}
	if r.methods.bits&mGET != 0 {
		r.methods.bits |= mHEAD
	}

	if emptyList(sp.Match.Paths) {
		fail("match.paths", `empty list; omit paths (or write "/**") to match every path`)
	}
	clear(seen)
	for j, p := range sp.Match.Paths {
		pp, problem := compilePattern(p)
		if problem != "" {
			fail(fmt.Sprintf("match.paths[%d]", j), "%s", problem)
			continue
		}
		if k, dup := seen[pp.key()]; dup {
			fail(fmt.Sprintf("match.paths[%d]", j), "%q matches the same paths as paths[%d]; remove one", p, k)
			continue
		}
		seen[pp.key()] = j
		r.paths = append(r.paths, pp)
		r.hasParams = r.hasParams || len(pp.params) > 0
	}

	r.context = compileContext(sp.Match.Context, fail)

	r.pats = [][]segment{{{kind: segAny}}}
	if len(r.paths) > 0 {
		r.pats = make([][]segment, len(r.paths))
		for k := range r.paths {
			r.pats[k] = r.paths[k].segs
		}
	}

	// require
	req := &sp.Require
	if sp.Public && !req.empty() {
		fail("require", "a public rule lets requests through without a token, so it cannot require anything; remove require, or public: true")
	}
	r.req = *compileBlock(i, "require", req, env, fail)
	r.req.walk(func(b *block) {
		if b.when != nil {
			r.hasWhen = true
			r.reads |= b.when.vars
		}
	})
	r.audiences = compileNames(req.Audiences, "require.audiences", "audience", fail)
	r.audMissing = oneOf("audience", "audiences", r.audiences)
	return r, errs
}

// compileContext compiles match.context.
func compileContext(ctx map[string]string, fail func(field, format string, args ...any)) []contextReq {
	if ctx != nil && len(ctx) == 0 {
		fail("match.context", "empty; omit context, or list the context extensions and their values")
	}
	var out []contextReq
	for k, v := range ctx {
		switch k {
		case "":
			fail(`match.context[""]`, "empty extension name; remove it")
			continue
		case RuleExtension:
			fail("match.context."+k, "%q names the rule to apply directly and is not matched on; remove it here", k)
			continue
		}
		out = append(out, contextReq{k, v})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].key < out[b].key })
	return out
}

// RuleExtension is the Envoy context extension that names the rule to apply to a route.
const RuleExtension = "portcullis-rule"

// maxAnyOfDepth bounds the nesting of any_of.
const maxAnyOfDepth = 8

// compileBlock compiles a requirement block; field is its path ("require",
// "require.any_of[1]").
func compileBlock(i int, field string, req *RequireSpec, env *lazyEnv, fail func(field, format string, args ...any)) *block {
	b := &block{field: field}
	b.anyRoles = compileNames(req.AnyRoles, field+".any_roles", "role", fail)
	b.anyMissing = oneOf("role", "roles", b.anyRoles)
	for _, role := range compileNames(req.AllRoles, field+".all_roles", "role", fail) {
		b.allRoles = append(b.allRoles, required{role, fmt.Sprintf("role %q", role)})
	}
	for _, sc := range compileNames(req.Scopes, field+".scopes", "scope", fail) {
		b.scopes = append(b.scopes, required{sc, fmt.Sprintf("scope %q", sc)})
	}
	if req.Claims != nil && len(req.Claims) == 0 {
		fail(field+".claims", "empty; omit claims, or list the claims and their values")
	}
	keys := make([]string, 0, len(req.Claims))
	for k := range req.Claims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c, problem := compileClaim(k, req.Claims[k])
		if problem != "" {
			f := field + ".claims." + k
			if k == "" {
				f = field + `.claims[""]`
			}
			fail(f, "%s", problem)
			continue
		}
		b.claims = append(b.claims, c)
	}
	if req.When != "" {
		if e, err := env.get(); err != nil {
			fail(field+".when", "cannot set up CEL: %v", err)
		} else if c, problem := compileCondition(e, fmt.Sprintf("rules[%d].%s.when", i, field), req.When); problem != "" {
			fail(field+".when", "%s", problem)
		} else {
			b.when = c
		}
	}
	if field != "require" && req.SenderConstrained {
		fail(field+".sender_constrained", "sender_constrained applies to the whole rule; move it up to require")
	}
	if field != "require" && req.Audiences != nil {
		fail(field+".audiences", "audiences apply to the whole rule; move them up to require")
	}
	if field != "require" && req.Active {
		fail(field+".active", "active applies to the whole rule; move it up to require")
	}
	if req.AnyOf != nil {
		switch depth := strings.Count(field, ".any_of["); {
		case len(req.AnyOf) == 0:
			fail(field+".any_of", "empty list; omit it, or list the alternatives")
			return b
		case depth >= maxAnyOfDepth:
			fail(field+".any_of", "nested more than %d deep; simplify the alternatives", maxAnyOfDepth)
			return b
		}
	}
	for k := range req.AnyOf {
		alt := &req.AnyOf[k]
		af := fmt.Sprintf("%s.any_of[%d]", field, k)
		if alt.empty() {
			fail(af, "empty alternative, which any token meets; remove it, or list its requirements")
			continue
		}
		b.anyOf = append(b.anyOf, compileBlock(i, af, alt, env, fail))
	}
	return b
}

// oneOf is the Outcome.Missing text of a one-of list: `role "a"`, `one of roles "a", "b"`.
func oneOf(what, plural string, list []string) string {
	switch len(list) {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf("%s %q", what, list[0])
	}
	q := make([]string, len(list))
	for k, v := range list {
		q[k] = fmt.Sprintf("%q", v)
	}
	return "one of " + plural + " " + strings.Join(q, ", ")
}

// lazyEnv builds the CEL environment on first use: a rule set without `when` never pays for it.
type lazyEnv struct {
	env  *cel.Env
	err  error
	done bool
}

func (l *lazyEnv) get() (*cel.Env, error) {
	if !l.done {
		l.env, l.err = newCELEnv()
		l.done = true
	}
	return l.env, l.err
}

// compileNames checks a list of roles or scopes: no empty list, no empty or padded entry, no
// entry twice; scopes have no spaces (a token's scope claim is space-separated).
func compileNames(list []string, field, what string, fail func(field, format string, args ...any)) []string {
	if emptyList(list) {
		fail(field, "empty list; omit it, or list at least one %s", what)
	}
	var out []string
	seen := map[string]int{}
	for j, v := range list {
		f := fmt.Sprintf("%s[%d]", field, j)
		switch {
		case v == "":
			fail(f, "empty %s; remove it", what)
		case strings.TrimSpace(v) != v:
			fail(f, "%q has leading or trailing spaces; write %q", v, strings.TrimSpace(v))
		case what == "scope" && strings.ContainsAny(v, " \t\r\n"):
			fail(f, "%q is not one scope (a token's scopes are separated by spaces); list each scope on its own", v)
		default:
			if k, dup := seen[v]; dup {
				fail(f, "%q is already listed at %s[%d]; remove one", v, strings.TrimPrefix(field, "require."), k)
				continue
			}
			seen[v] = j
			out = append(out, v)
		}
	}
	return out
}

// emptyList reports a list written but empty ("methods: []"): almost always a templating slip,
// and ambiguous (nothing, or everything?), so it is refused.
func emptyList(l []string) bool { return l != nil && len(l) == 0 }

func validName(n string) bool {
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return n != ""
}
