// Package authz is the decision engine and its fronts. A front (the Envoy ext_authz v3 gRPC
// service, the HTTP forward-auth handler) translates its wire request into a Request, the Engine
// decides, and the front translates the Decision back. The engine knows nothing of protobuf.
//
// Where each part lives: engine.go the decision order; decision.go the Request and the
// Decision; tokens.go finding the token and cutting it out of the upstream request;
// identity.go what a verified token becomes (its identity headers); cache.go the verified-token
// cache; answers.go the allow and deny answers; dryrun.go dry-run rules; authorizer.go the
// Authorizer every front calls (metrics, logs); grpc.go and wire.go the gRPC front; http.go
// the HTTP forward-auth front.
package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/reason"
	"github.com/portcullis-authz/portcullis/rules"
	"github.com/portcullis-authz/portcullis/token"
)

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
	// Paths says how request paths are normalised (paths.matrix_parameters); the zero value
	// is rules.NormalizePath's default.
	Paths rules.PathOptions
	// Now is the clock conditions read as `now`, and DPoP proofs' iat is checked against; nil
	// is time.Now.
	Now func() time.Time
	// IdentityHeaderMaxBytes bounds each identity header's value (identity_headers_max_bytes);
	// a larger one is not sent, and logged. 0 is DefaultIdentityHeaderMaxBytes.
	IdentityHeaderMaxBytes int
	// Log receives the engine's own warnings (an identity header too large to send); nil
	// discards them.
	Log *slog.Logger
	// Introspectors ask issuers whether a token is active, for rules with require.active, by
	// every spelling of their issuer's iss (issuer and aliases); nil = none (introspection.go).
	Introspectors map[string]Introspector
	// Opaque introspects the tokens that are not JWS (opaque_tokens); nil = they are refused.
	Opaque Introspector
	// Sender says how sender-constrained tokens are checked (sender.go); the zero value is
	// the defaults.
	Sender SenderOptions
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
	removeAll []string
	cache     *tokenCache
	paths     rules.PathOptions
	// secretHeaders are the token sources' headers, whose values a condition's explanation
	// never shows.
	secretHeaders []string
	now           func() time.Time
	// maxHeaderBytes bounds an identity header's value; log takes the warning of one too large.
	maxHeaderBytes int
	log            *slog.Logger
	introspectors  map[string]Introspector
	opaque         Introspector
	sender         sender
}

// NewEngine builds an engine from its parts.
func NewEngine(o Options) *Engine {
	e := &Engine{rules: o.Rules, verifier: o.Verifier, sources: o.Sources, forwardToken: o.ForwardToken,
		cache: newTokenCache(o.CacheSize, o.CacheLookups), paths: o.Paths}
	for name, value := range o.IdentityHeaders {
		e.identity = append(e.identity, identityHeader{name: strings.ToLower(name), value: value})
	}
	sort.Slice(e.identity, func(i, j int) bool { return e.identity[i].name < e.identity[j].name })
	for _, h := range e.identity {
		e.removeAll = append(e.removeAll, h.name)
	}
	for _, src := range o.Sources {
		if src.Header != "" {
			e.secretHeaders = append(e.secretHeaders, strings.ToLower(src.Header))
		}
	}
	e.introspectors, e.opaque = o.Introspectors, o.Opaque
	e.now = o.Now
	if e.now == nil {
		e.now = time.Now
	}
	e.maxHeaderBytes, e.log = o.IdentityHeaderMaxBytes, o.Log
	if e.maxHeaderBytes <= 0 {
		e.maxHeaderBytes = DefaultIdentityHeaderMaxBytes
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.sender = newSender(o.Sender, e.now)
	if h := e.sender.certHeader; h != "" {
		e.removeAll = append(e.removeAll, h)
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
	// 2. The rule: named by the route, or the first match (with its path's params when its
	// conditions read them).
	var rule *rules.Rule
	var params *rules.Params
	if r.RuleName != "" {
		if rule = e.rules.Lookup(r.RuleName); rule == nil {
			d := e.deny(reason.NoRule, nil)
			d.Detail = fmt.Sprintf("the route names rule %q (context extension portcullis-rule), which is not configured", r.RuleName)
			return d
		}
	} else {
		var p rules.Params
		if rule, p = e.rules.MatchRequest(&rules.Input{Method: r.Method, Host: r.Host, Path: path, Context: r.Context}); rule == nil {
			d := e.deny(reason.NoRule, nil)
			d.Detail = fmt.Sprintf("no rule matches %s %s%s", r.Method, r.Host, path)
			return d
		}
		params = &p
	}
	d := e.decideRule(ctx, r, rule, path, params)
	e.senderChallenge(d, r, rule)
	d.Rule = rule.Name()
	if rule.DryRun() {
		return e.dryRun(d, r)
	}
	return d
}

// decideRule applies steps 3 to 8 of the decision order with the rule chosen; path is the
// normalised path; params are those MatchRequest gave, nil when the route named the rule.
func (e *Engine) decideRule(ctx context.Context, r *Request, rule *rules.Rule, path string, params *rules.Params) *Decision {
	// 3. The token, from the first configured source present.
	raw, dpopScheme, found := e.findToken(r.Headers)
	if rule.Public() {
		if !found {
			return e.allow(reason.Public, nil, r)
		}
		ci, intro, cached, err := e.identifyFor(ctx, raw)
		if err == nil {
			if sd := e.checkSender(r, raw, dpopScheme, ci, false); sd != nil {
				err = errors.New(sd.Reason.String() + ": " + sd.Detail)
			}
		}
		if err != nil {
			d := e.allow(reason.Public, nil, r)
			d.Detail = "anonymous: " + err.Error()
			d.Introspection = intro
			return d
		}
		d := e.allow(reason.Public, ci, r)
		d.Cached = cached
		d.Introspection = intro
		return d
	}
	// 4. No token on a protected rule.
	if !found {
		d := e.deny(reason.NoToken, nil)
		d.Detail = "no token in " + e.describeSources()
		return d
	}
	// 5. and 7. Token refused, or keys never loaded.
	ci, intro, cached, err := e.identifyFor(ctx, raw) // introspection.go
	if err != nil {
		return e.refused(err, intro)
	}
	// 5b. The token's binding to the sender (DPoP proof, client certificate), proven on every
	// request, cached token or not; and require.sender_constrained.
	if sd := e.checkSender(r, raw, dpopScheme, ci, rule.SenderConstrained()); sd != nil {
		sd.Cached, sd.Introspection = cached, intro
		return sd
	}
	// 5c. require.active: a verified JWT is introspected, after its signature and its binding
	// (an opaque token's identity is already its issuer's answer).
	if rule.RequiresActive() && intro == nil {
		var answerCached bool
		if intro, answerCached, err = e.introspectActive(ctx, raw, ci); err != nil {
			return e.refused(err, intro)
		}
		if intro == nil {
			return e.noIntrospection(ci)
		}
		cached = cached && answerCached
	}
	// 6. Requirements: the rule answers with the reason (ok, forbidden, insufficient_scope).
	in := rules.Input{Method: r.Method, Host: r.Host, Path: path, Headers: r.Headers, Context: r.Context}
	if rule.HasConditions() {
		e.conditionInput(&in, r, rule, params)
	}
	out := rule.Check(&ci.principal, &in)
	var d *Decision
	if out.Reason == reason.OK {
		d = e.allow(reason.OK, ci, r)
	} else {
		d = e.deny(out.Reason, out.MissingScopes)
		d.Identity, d.Missing = ci.id, out.Missing
		d.Detail = "missing " + strings.Join(out.Missing, ", ")
	}
	d.Cached = cached
	for _, ce := range out.Errors {
		d.ConditionErrors = append(d.ConditionErrors, ce.Error())
	}
	d.Introspection = intro
	return d
}

// refused is the deny of a token that was refused (or whose keys or introspection endpoint
// could not say): the token error's reason, detail and hint; intro is what introspection
// answered, if it was asked.
func (e *Engine) refused(err error, intro *Introspection) *Decision {
	d := e.deny(token.ReasonOf(err), nil)
	d.Detail = err.Error()
	var te *token.Error
	if errors.As(err, &te) {
		d.Detail, d.Hint = te.Detail, te.Hint
	}
	d.Introspection = intro
	return d
}

// conditionInput fills what only a rule's `when` reads, and only what one of them reads: the
// path's params (those MatchRequest gave, or, for a rule the route named, those of the rule's
// pattern that matches the path), the query, the source address, the time, and the headers
// whose values are never shown.
func (e *Engine) conditionInput(in *rules.Input, r *Request, rule *rules.Rule, params *rules.Params) {
	if rule.Reads("params") {
		if params != nil {
			in.Params = *params
		} else {
			in.Params = rule.Params(in.Path)
		}
	}
	if rule.Reads("request.query") {
		if _, q, ok := strings.Cut(r.Path, "?"); ok {
			q, _, _ = strings.Cut(q, "#")
			in.Query = firstValues(q)
		}
	}
	if rule.Reads("source.address") {
		in.SourceAddress = sourceAddress(r.SourceAddress)
	}
	if rule.Reads("now") {
		in.Now = e.now()
	}
	in.SecretHeaders = e.secretHeaders
}

// sourceAddress returns the client address as `source.address` shows it: an IP address in
// its normal form, an IPv4-mapped IPv6 address unmapped; anything else as given. An address
// already in its normal form (what Envoy sends) is returned without allocating.
func sourceAddress(s string) string {
	if s == "" {
		return s
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return s
	}
	var buf [64]byte
	if norm := a.Unmap().AppendTo(buf[:0]); string(norm) != s {
		return string(norm)
	}
	return s
}

// firstValues decodes a query string into the first value of each parameter; a parameter
// that does not decode is left out.
func firstValues(q string) map[string]string {
	out := map[string]string{}
	for q != "" {
		var part string
		part, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(part, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil || k == "" {
			continue
		}
		if _, seen := out[k]; !seen {
			out[k] = v
		}
	}
	return out
}
