package authz

import (
	"context"
	"fmt"
	"time"

	"github.com/portcullis-authz/portcullis/introspect"
	"github.com/portcullis-authz/portcullis/reason"
	"github.com/portcullis-authz/portcullis/token"
)

// Introspector asks one issuer whether a token is active (token introspection, RFC 7662), from
// its cache or by a call. *introspect.Introspector implements it; tests use a fake.
type Introspector interface {
	// Issuer is the configured issuer whose endpoint is asked.
	Issuer() string
	// Check says whether raw (whose token cache key is key) is active; notAfter, when not
	// zero, is the token's own expiry, past which a positive answer is not kept. An error
	// means the issuer could not say.
	Check(ctx context.Context, key introspect.Key, raw string, notAfter time.Time) (introspect.Answer, error)
}

var _ Introspector = (*introspect.Introspector)(nil)

// Introspection is what token introspection answered for a decision, for the log line and
// `portcullis check`.
type Introspection struct {
	// Issuer is the issuer asked.
	Issuer string
	// Active is the answer; false as well when the issuer could not say (the decision's
	// reason tells which).
	Active bool
	// Cached says the answer came from the introspection cache.
	Cached bool
	// Until is when the answer leaves the cache; zero when it is not kept.
	Until time.Time
}

// identifyFor finds the identity of a token: an opaque token (not a JWS) from the answer of
// the issuer that introspects opaque tokens (intro says what it answered); any other token
// verified, or found in the token cache (intro nil).
func (e *Engine) identifyFor(ctx context.Context, raw string) (ci *identity, intro *Introspection, cached bool, err error) {
	if e.opaque != nil && token.IsOpaque(raw) {
		return e.identifyOpaque(ctx, raw)
	}
	ci, cached, err = e.identify(ctx, raw)
	return ci, nil, cached, err
}

// introspectActive asks the issuer of a verified JWT whether it is still active (a rule's
// require.active). decideRule calls it only after the signature and the sender binding were
// checked: a forged token, or a bound token without its proof, never reaches the identity
// provider. intro is nil, with no error, when the token's issuer has no introspection (the rule
// then denies); cached reports that the answer came from the introspection cache.
func (e *Engine) introspectActive(ctx context.Context, raw string, ci *identity) (intro *Introspection, cached bool, err error) {
	in := e.introspectors[ci.id.Issuer]
	if in == nil {
		return nil, false, nil
	}
	key := ci.key
	if !ci.hasKey {
		key = tokenKey(raw)
	}
	ans, err := in.Check(ctx, key, raw, ci.id.ExpiresAt)
	intro = introspectionOf(in, ans)
	if err = answerError(in, ans, err); err != nil {
		return intro, false, err
	}
	return intro, ans.Cached, nil
}

// identifyOpaque introspects an opaque token at the issuer configured for them; the answer's
// claims are its identity, held to what a JWT's claims are (token.Verifier.Introspected).
// A rendered identity is kept in the token cache while the answer it came from is cached.
func (e *Engine) identifyOpaque(ctx context.Context, raw string) (*identity, *Introspection, bool, error) {
	if max := e.verifier.MaxBytes(); len(raw) > max {
		return nil, nil, false, &token.Error{Reason: reason.InvalidToken, Detail: fmt.Sprintf("token is %d bytes, more than tokens.max_bytes (%d)", len(raw), max)}
	}
	if !b64token(raw) {
		return nil, nil, false, &token.Error{Reason: reason.InvalidToken, Detail: "not a JWT, and not an opaque token either: it holds characters outside RFC 6750's b64token; it was not introspected"}
	}
	key := tokenKey(raw)
	ans, err := e.opaque.Check(ctx, key, raw, time.Time{})
	info := introspectionOf(e.opaque, ans)
	if err = answerError(e.opaque, ans, err); err != nil {
		return nil, info, false, err
	}
	if ans.Cached && e.cache != nil {
		if ci, ok := e.cache.c.GetIfPresent(key); ok && ci.id.Introspected {
			return ci, info, true, nil
		}
	}
	id, err := e.verifier.Introspected(e.opaque.Issuer(), ans.Claims)
	if err != nil {
		return nil, info, false, err
	}
	ci := e.render(id)
	ci.key, ci.hasKey = key, true
	if e.cache != nil {
		e.cache.c.Set(key, ci)
	}
	return ci, info, false, nil
}

func introspectionOf(in Introspector, ans introspect.Answer) *Introspection {
	return &Introspection{Issuer: in.Issuer(), Active: ans.Active, Cached: ans.Cached, Until: ans.Until}
}

// answerError turns an introspection that did not say active into the token refusal it is:
// introspection_unavailable (503) when the issuer could not say, invalid_token (401) when it
// said the token is not active.
func answerError(in Introspector, ans introspect.Answer, err error) error {
	switch {
	case err != nil:
		return &token.Error{Reason: reason.IntrospectionUnavailable, Detail: err.Error(), Err: err,
			Hint: "the introspection endpoint of " + in.Issuer() + " could not say whether the token is active, so Portcullis fails closed (503) until it answers: see the log and portcullis_introspection_requests_total{result=\"error\"}"}
	case !ans.Active:
		return &token.Error{Reason: reason.InvalidToken, Detail: "the identity provider says the token is not active (token introspection at " + in.Issuer() + "): revoked, its session ended, or expired"}
	}
	return nil
}

// b64token reports whether s is an RFC 6750 §2.1 b64token: what a bearer token may be made of.
func b64token(s string) bool {
	if s == "" {
		return false
	}
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// noIntrospection is the deny of a rule requiring active for a token whose issuer has no
// introspection: no new token of that issuer would pass, so it is a 403.
func (e *Engine) noIntrospection(ci *identity) *Decision {
	d := e.deny(reason.Forbidden, nil)
	d.Identity = ci.id
	d.Missing = []string{fmt.Sprintf("an active token (require.active), which issuer %s cannot confirm: it has no introspection", ci.id.Issuer)}
	d.Detail = "missing " + d.Missing[0]
	return d
}
