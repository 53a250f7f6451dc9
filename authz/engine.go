// Package authz is the decision engine and its fronts. A front (the Envoy ext_authz v3 gRPC
// service, the HTTP forward-auth handler) translates its wire request into a Request, the Engine
// decides, and the front translates the Decision back. The engine knows nothing of protobuf.
package authz

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/reason"
	"github.com/portcullis-authz/portcullis/rules"
	"github.com/portcullis-authz/portcullis/token"
)

// Request is the original request being authorised, as any front sees it.
type Request struct {
	Method string
	// Host is the :authority (or Host), possibly with a port.
	Host string
	// Path is the raw request target: undecoded, possibly with query and fragment.
	Path string
	// Headers has lower-case names; repeated headers are joined with commas (Envoy's convention).
	Headers map[string]string
	// RuleName, when set, names the rule to apply instead of matching (Envoy's per-route
	// context extension `portcullis-rule`).
	RuleName string
	// Invalid, when set, says why the front could not reconstruct the original request; the
	// engine answers 400 bad_request.
	Invalid string
}

// Header is one header to set on the upstream request (allow) or on the answer (deny).
type Header struct {
	Name, Value string
}

// Decision is the engine's answer, with everything a front needs to build its wire answer and
// everything a log line or `portcullis check` needs to explain it.
type Decision struct {
	Allow  bool
	Status int
	// Reason is the decision's reason; a deny's status, body and headers are its row of the
	// reason table.
	Reason reason.Code
	// Rule is the name of the matched rule ("" when none matched).
	Rule string
	// DryRun is set when the matched rule is in dry-run mode; Allow is then true whatever
	// WouldAllow says.
	DryRun     bool
	WouldAllow bool
	// Set are the identity headers for the upstream (allow) or the answer headers (deny).
	Set []Header
	// Remove are upstream request headers to remove (allow only): every configured identity
	// header not in Set, and the token's carrier when forward_token is false.
	Remove []string
	// Body is the JSON deny body; nil on allow.
	Body []byte
	// Identity is the verified token's identity, if any.
	Identity *token.Identity
	// roles is Identity's roles comma-separated (for Envoy's dynamic metadata).
	roles string
	// Detail explains the reason precisely (never the token itself); Hint says what to change.
	Detail, Hint string
	// Missing lists unmet requirements on a 403.
	Missing []string
}

// identityHeader maps an upstream header to what it carries.
type identityHeader struct {
	name  string
	value token.Attribute
}

// Options build an Engine.
type Options struct {
	Rules           *rules.Set
	Verifier        *token.Verifier
	Sources         []config.TokenSource
	IdentityHeaders map[string]token.Attribute // header name → what it carries (a claim, or the merged roles, scopes, ...)
	ForwardToken    bool
	// CacheSize is the number of verified tokens remembered (cache.tokens); 0 = no cache.
	CacheSize int
	// CacheLookups is called on every token cache lookup (the hit/miss metric); may be nil.
	CacheLookups func(hit bool)
	// ForwardAuth says how the HTTP front reconstructs the original request.
	ForwardAuth config.ForwardAuth
	// Paths says how request paths are normalised (paths.matrix_parameters); the zero value
	// is rules.NormalizePath's default.
	Paths rules.PathOptions
}

// Engine decides. It is immutable once built and safe for concurrent use; a configuration
// reload builds a new one.
type Engine struct {
	rules        *rules.Set
	verifier     *token.Verifier
	sources      []config.TokenSource
	identity     []identityHeader
	forwardToken bool
	// removeAll is every identity header name, for anonymous allows (shared, never mutated).
	removeAll   []string
	cache       *tokenCache
	forwardAuth config.ForwardAuth
	paths       rules.PathOptions
}

// NewEngine builds an engine from its parts.
func NewEngine(o Options) *Engine {
	e := &Engine{rules: o.Rules, verifier: o.Verifier, sources: o.Sources, forwardToken: o.ForwardToken,
		cache: newTokenCache(o.CacheSize, o.CacheLookups), forwardAuth: o.ForwardAuth, paths: o.Paths}
	for name, value := range o.IdentityHeaders {
		e.identity = append(e.identity, identityHeader{name: strings.ToLower(name), value: value})
	}
	sort.Slice(e.identity, func(i, j int) bool { return e.identity[i].name < e.identity[j].name })
	for _, h := range e.identity {
		e.removeAll = append(e.removeAll, h.name)
	}
	return e
}

// Decide applies the decision order of docs/decisions.md to one request.
func (e *Engine) Decide(ctx context.Context, r *Request) *Decision {
	if r.Invalid != "" {
		d := e.deny(reason.BadRequest, nil)
		d.Detail = r.Invalid
		return d
	}
	// 1. Normalise the path; ambiguity is a 400. Both fronts come here: this is the one place
	// a request path is read.
	path, err := e.paths.Normalize(r.Path)
	if err != nil {
		d := e.deny(reason.BadRequest, nil)
		d.Detail = err.Error()
		return d
	}
	// 2. The rule: named by the route, or the first match.
	var rule *rules.Rule
	if r.RuleName != "" {
		if rule = e.rules.Lookup(r.RuleName); rule == nil {
			d := e.deny(reason.NoRule, nil)
			d.Detail = fmt.Sprintf("the route names rule %q (context extension portcullis-rule), which is not configured", r.RuleName)
			return d
		}
	} else if rule = e.rules.Match(r.Host, r.Method, path); rule == nil {
		d := e.deny(reason.NoRule, nil)
		d.Detail = fmt.Sprintf("no rule matches %s %s%s", r.Method, r.Host, path)
		return d
	}
	d := e.decideRule(ctx, r, rule)
	d.Rule = rule.Name()
	if rule.DryRun() {
		d.DryRun, d.WouldAllow = true, d.Allow
		if !d.Allow {
			// Serve an allow, with the identity the token proved if any.
			code, detail, hint, missing, id := d.Reason, d.Detail, d.Hint, d.Missing, d.Identity
			var ci *identity
			if id != nil {
				ci = e.render(id)
			}
			*d = *e.allow(code, ci, r)
			d.Rule, d.DryRun, d.WouldAllow, d.Detail, d.Hint, d.Missing = rule.Name(), true, false, detail, hint, missing
		}
	}
	return d
}

func (e *Engine) decideRule(ctx context.Context, r *Request, rule *rules.Rule) *Decision {
	// 3. The token, from the first configured source present.
	raw, found := e.findToken(r.Headers)
	if rule.Public() {
		if !found {
			return e.allow(reason.Public, nil, r)
		}
		ci, err := e.identify(ctx, raw)
		if err != nil {
			d := e.allow(reason.Public, nil, r)
			d.Detail = "anonymous: " + err.Error()
			return d
		}
		return e.allow(reason.Public, ci, r)
	}
	// 4. No token on a protected rule.
	if !found {
		d := e.deny(reason.NoToken, nil)
		d.Detail = "no token in " + e.describeSources()
		return d
	}
	// 5. and 7. Token refused, or keys never loaded.
	ci, err := e.identify(ctx, raw)
	if err != nil {
		var te *token.Error
		d := e.deny(token.ReasonOf(err), nil)
		d.Detail = err.Error()
		if errors.As(err, &te) {
			d.Detail, d.Hint = te.Detail, te.Hint
		}
		return d
	}
	// 6. Requirements: the rule answers with the reason (ok, forbidden, insufficient_scope).
	out := rule.Check(&ci.principal)
	if out.Reason == reason.OK {
		return e.allow(reason.OK, ci, r)
	}
	d := e.deny(out.Reason, out.MissingScopes)
	d.Identity, d.Missing = ci.id, out.Missing
	d.Detail = "missing " + strings.Join(out.Missing, ", ")
	return d
}

// identify verifies a token, or finds it in the token cache still fresh.
func (e *Engine) identify(ctx context.Context, raw string) (*identity, error) {
	var key [sha256.Size]byte
	if e.cache != nil {
		key = tokenKey(raw)
		if ci, ok := e.cache.lru.Get(key); ok {
			if e.verifier.Fresh(ci.id) {
				e.cache.counted(true)
				return ci, nil
			}
			// Expired, or its key was rotated out: verify afresh for the precise reason.
			e.cache.lru.Remove(key)
		}
		e.cache.counted(false)
	}
	id, err := e.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	ci := e.render(id)
	if e.cache != nil {
		e.cache.lru.Add(key, ci)
	}
	return ci, nil
}

func (e *Engine) describeSources() string {
	parts := make([]string, 0, len(e.sources))
	for _, s := range e.sources {
		if s.Cookie != "" {
			parts = append(parts, "cookie "+s.Cookie)
		} else {
			parts = append(parts, "header "+s.Header)
		}
	}
	return strings.Join(parts, ", ")
}

// findToken returns the token from the first configured source present in the headers.
func (e *Engine) findToken(h map[string]string) (string, bool) {
	for _, s := range e.sources {
		if s.Cookie != "" {
			if v, ok := cookieValue(h["cookie"], s.Cookie); ok {
				return v, true
			}
			continue
		}
		v, ok := h[s.Header]
		if !ok {
			continue
		}
		if s.Prefix != "" {
			if len(v) < len(s.Prefix) || !strings.EqualFold(v[:len(s.Prefix)], s.Prefix) {
				continue
			}
			v = v[len(s.Prefix):]
		}
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		return v, true
	}
	return "", false
}

// cookieValue finds a cookie in a Cookie header (several headers arrive joined by commas or
// semicolons).
func cookieValue(header, name string) (string, bool) {
	for header != "" {
		var part string
		i := strings.IndexAny(header, ";,")
		if i < 0 {
			part, header = header, ""
		} else {
			part, header = header[:i], header[i+1:]
		}
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && k == name && v != "" {
			return strings.Trim(v, `"`), true
		}
	}
	return "", false
}

// allow builds an allow with the identity headers set and every other identity header removed.
// The header lists of a cached identity are shared: they are copied before anything is added.
func (e *Engine) allow(code reason.Code, ci *identity, r *Request) *Decision {
	d := &Decision{Allow: true, Status: 200, Reason: code}
	if ci == nil {
		d.Remove = e.removeAll
	} else {
		d.Identity, d.roles, d.Set, d.Remove = ci.id, ci.roles, ci.set, ci.remove
	}
	if !e.forwardToken {
		d.Set, d.Remove = slices.Clone(d.Set), slices.Clone(d.Remove)
		e.stripToken(d, r.Headers)
	}
	return d
}

// stripToken removes every configured token carrier from the upstream request.
func (e *Engine) stripToken(d *Decision, h map[string]string) {
	var cookies []string
	for _, s := range e.sources {
		if s.Header != "" {
			if _, ok := h[s.Header]; ok {
				d.Remove = append(d.Remove, s.Header)
			}
		} else {
			cookies = append(cookies, s.Cookie)
		}
	}
	if len(cookies) == 0 || h["cookie"] == "" {
		return
	}
	var kept []string
	for _, part := range strings.FieldsFunc(h["cookie"], func(r rune) bool { return r == ';' || r == ',' }) {
		part = strings.TrimSpace(part)
		name, _, _ := strings.Cut(part, "=")
		drop := false
		for _, c := range cookies {
			drop = drop || name == c
		}
		if !drop && part != "" {
			kept = append(kept, part)
		}
	}
	if len(kept) == 0 {
		d.Remove = append(d.Remove, "cookie")
	} else {
		d.Set = append(d.Set, Header{"cookie", strings.Join(kept, "; ")})
	}
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
