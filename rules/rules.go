// Package rules compiles the configuration's route-to-role rules once at load and applies them:
// matching a request's host, method and normalised path (first match wins, in file order), and
// checking a verified principal against a rule's requirements (roles, scopes, claims). It knows
// nothing of tokens' wire format, gRPC or HTTP.
package rules

import (
	"errors"
	"fmt"
	"strings"
)

// Spec is one rule as written in the configuration file.
type Spec struct {
	Name    string      `yaml:"name"`
	Match   MatchSpec   `yaml:"match"`
	Public  bool        `yaml:"public"`
	DryRun  bool        `yaml:"dry_run"`
	Require RequireSpec `yaml:"require"`
}

// MatchSpec selects requests. An empty list matches everything.
type MatchSpec struct {
	Hosts   []string `yaml:"hosts"`
	Methods []string `yaml:"methods"`
	Paths   []string `yaml:"paths"`
}

// RequireSpec lists what a token must prove. Nothing listed = any valid token.
type RequireSpec struct {
	AnyRoles []string       `yaml:"any_roles"`
	AllRoles []string       `yaml:"all_roles"`
	Scopes   []string       `yaml:"scopes"`
	Claims   map[string]any `yaml:"claims"`
}

func (r RequireSpec) empty() bool {
	return len(r.AnyRoles) == 0 && len(r.AllRoles) == 0 && len(r.Scopes) == 0 && len(r.Claims) == 0
}

// Set is a compiled rule set. It is immutable and safe for concurrent use.
type Set struct {
	rules    []*Rule
	index    *index
	byName   map[string]*Rule
	warnings []string
}

// Rule is one compiled rule.
type Rule struct {
	spec    Spec
	index   int
	hosts   []hostPattern
	methods methodSet
	paths   []pathPattern
	claims  []claimReq
}

// Name returns the rule's name.
func (r *Rule) Name() string { return r.spec.Name }

// Public reports whether the rule needs no token.
func (r *Rule) Public() bool { return r.spec.Public }

// DryRun reports whether the rule's decisions are only logged and counted, the request allowed.
func (r *Rule) DryRun() bool { return r.spec.DryRun }

// Spec returns the rule as configured.
func (r *Rule) Spec() Spec { return r.spec }

// Len returns the number of rules.
func (s *Set) Len() int { return len(s.rules) }

// Rules returns the compiled rules in file order.
func (s *Set) Rules() []*Rule { return s.rules }

// Warnings returns the non-fatal findings of compilation (shadowed rules, public rules
// overlapping protected ones).
func (s *Set) Warnings() []string { return s.warnings }

// Lookup returns the rule named name (Envoy's per-route context extension `portcullis-rule`),
// or nil.
func (s *Set) Lookup(name string) *Rule { return s.byName[name] }

// Match returns the first rule, in file order, whose hosts, methods and paths all match; nil
// when none does. host may carry a port and any letter case; path must come from NormalizePath.
func (s *Set) Match(host, method, path string) *Rule {
	if path == "" || path[0] != '/' {
		return nil
	}
	return s.index.match(hostOnly(host), methodBit(method), path)
}

func (r *Rule) matches(host string, method uint16, path string) bool {
	if !r.methods.has(method) {
		return false
	}
	if len(r.hosts) > 0 {
		ok := false
		for _, hp := range r.hosts {
			if hp.match(host) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(r.paths) == 0 {
		return true
	}
	for i := range r.paths {
		if r.paths[i].match(path) {
			return true
		}
	}
	return false
}

// Compile validates and compiles the rules. Every problem is reported, each with its field
// path (`rules[2].match.paths[0]: ...`), joined with errors.Join.
func Compile(specs []Spec) (*Set, error) {
	s := &Set{byName: make(map[string]*Rule, len(specs))}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for i, sp := range specs {
		p := fmt.Sprintf("rules[%d]", i)
		r := &Rule{spec: sp, index: i}
		switch {
		case sp.Name == "":
			fail("%s.name: every rule needs a name (it appears in logs, metrics and Envoy metadata)", p)
		case !validName(sp.Name):
			fail("%s.name: %q may use only letters, digits and - _ . :", p, sp.Name)
		default:
			if prev, dup := s.byName[sp.Name]; dup {
				fail("%s.name: %q is already used by rules[%d]", p, sp.Name, prev.index)
			} else {
				s.byName[sp.Name] = r
			}
		}
		for j, h := range sp.Match.Hosts {
			hp, err := compileHost(h)
			if err != nil {
				fail("%s.match.hosts[%d]: %v", p, j, err)
				continue
			}
			r.hosts = append(r.hosts, hp)
		}
		if len(sp.Match.Methods) == 0 {
			r.methods = allMethods
		}
		for j, m := range sp.Match.Methods {
			bit := methodBit(m)
			switch {
			case m != strings.ToUpper(m):
				fail("%s.match.methods[%d]: %q must be upper case (%s)", p, j, m, strings.ToUpper(m))
			case bit == 0:
				fail("%s.match.methods[%d]: %q is not an HTTP method; use GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, CONNECT or TRACE", p, j, m)
			default:
				r.methods |= methodSet(bit)
			}
		}
		for j, pat := range sp.Match.Paths {
			pp, err := compilePath(pat)
			if err != nil {
				fail("%s.match.paths[%d]: %v", p, j, err)
				continue
			}
			r.paths = append(r.paths, pp)
		}
		if sp.Public && !sp.Require.empty() {
			fail("%s: a public rule cannot have requirements; remove public: true or the require block", p)
		}
		for j, role := range sp.Require.AnyRoles {
			if role == "" {
				fail("%s.require.any_roles[%d]: empty role", p, j)
			}
		}
		for j, role := range sp.Require.AllRoles {
			if role == "" {
				fail("%s.require.all_roles[%d]: empty role", p, j)
			}
		}
		for j, sc := range sp.Require.Scopes {
			if sc == "" || strings.ContainsAny(sc, " \t") {
				fail("%s.require.scopes[%d]: %q is not a single scope", p, j, sc)
			}
		}
		for _, name := range sortedKeys(sp.Require.Claims) {
			cr, err := compileClaim(name, sp.Require.Claims[name])
			if err != nil {
				fail("%s.require.claims.%s: %v", p, name, err)
				continue
			}
			r.claims = append(r.claims, cr)
		}
		s.rules = append(s.rules, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.index = buildIndex(s.rules)
	s.warnings = findWarnings(s.rules)
	return s, nil
}

func validName(n string) bool {
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.:", c) >= 0) {
			return false
		}
	}
	return true
}

// methodSet is a bitset of HTTP methods.
type methodSet uint16

const allMethods = methodSet(0xffff)

var methodBits = map[string]uint16{
	"GET": 1 << 0, "HEAD": 1 << 1, "POST": 1 << 2, "PUT": 1 << 3, "PATCH": 1 << 4,
	"DELETE": 1 << 5, "OPTIONS": 1 << 6, "CONNECT": 1 << 7, "TRACE": 1 << 8,
}

// otherMethod stands for any method outside the known set: only a rule without a method list
// matches it.
const otherMethod = 1 << 15

func methodBit(m string) uint16 {
	switch m {
	case "GET":
		return 1 << 0
	case "POST":
		return 1 << 2
	}
	if b, ok := methodBits[m]; ok {
		return b
	}
	return 0
}

func (s methodSet) has(bit uint16) bool {
	if bit == 0 {
		bit = otherMethod
	}
	return uint16(s)&bit != 0
}
