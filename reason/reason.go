// Package reason is the one vocabulary of decision reasons: the fixed snake_case codes that
// token verification refuses with, that rules answer with, that the fronts turn into deny
// answers, and that logs, the `reason` label of portcullis_decisions_total and `portcullis check`
// show (docs/decisions.md, Reasons; docs/metrics.md).
//
// Every fact about a reason is one row of the table below. Adding a reason is its constant and
// its row, in this file; nothing else is to be edited for the answers, the metric series and the
// explanation to follow. The tests check the table against docs/decisions.md and
// docs/metrics.md, so the documentation has to be extended in the same change.
//
// The package imports nothing of Portcullis, so that token, rules and authz can all use it.
package reason

import "slices"

// Code is the fixed snake_case code of a decision reason. It is also the value of the `reason`
// metric label and of the `reason` log field, unchanged.
type Code string

// The decision reasons, in the order of the table (docs/decisions.md, Reasons).
const (
	OK                Code = "ok"
	Public            Code = "public"
	NoRule            Code = "no_rule"
	NoToken           Code = "no_token"
	InvalidToken      Code = "invalid_token"
	Expired           Code = "expired"
	BadSignature      Code = "bad_signature"
	UnknownIssuer     Code = "unknown_issuer"
	UnknownKey        Code = "unknown_key"
	WrongAudience     Code = "wrong_audience"
	InvalidDPoPProof  Code = "invalid_dpop_proof"
	Forbidden         Code = "forbidden"
	InsufficientScope Code = "insufficient_scope"
	BadRequest        Code = "bad_request"
	Unavailable       Code = "unavailable"
)

// IntrospectionUnavailable: the identity provider could not say whether the token is active
// (token introspection, RFC 7662: down, timed out, a malformed answer). It is apart from
// Unavailable, whose cause (the issuer's key set), remedy and description differ.
const IntrospectionUnavailable Code = "introspection_unavailable"

// Challenge is the WWW-Authenticate header a deny carries (RFC 6750 §3).
type Challenge uint8

// The WWW-Authenticate kinds (docs/decisions.md, WWW-Authenticate).
const (
	// ChallengeNone: no WWW-Authenticate header (allows, 400, 403 other than scopes, 503).
	ChallengeNone Challenge = iota
	// ChallengeBare: `Bearer realm="…"` without an error code, for a request that sent no
	// credentials (RFC 6750 §3.1: no error code then).
	ChallengeBare
	// ChallengeInvalidToken: `error="invalid_token"` with the row's description.
	ChallengeInvalidToken
	// ChallengeInsufficientScope: `error="insufficient_scope"` with the row's description and
	// the missing scopes.
	ChallengeInsufficientScope
	// ChallengeInvalidDPoPProof: `DPoP error="invalid_dpop_proof"` with the row's description
	// (RFC 9449 §7.1); the engine adds the algs parameter and the Bearer challenge.
	ChallengeInvalidDPoPProof
)

// Answer is everything Portcullis says about one reason.
type Answer struct {
	Code Code
	// Status is the HTTP status of the answer; 200 for the reasons of an allow.
	Status int
	// Error is the "error" member of the JSON deny body ("" for an allow).
	Error string
	// Description is the "error_description" of the deny body and of WWW-Authenticate. It is
	// fixed text: it never carries the token, a claim value or key material, so it needs no
	// escaping. The precise cause of a decision goes to the log line and `portcullis check`.
	Description string
	// Challenge is the WWW-Authenticate header of a deny.
	Challenge Challenge
	// TokenRefusal is set for the reasons token verification refuses a token with (a
	// token.Error carries one of them, and only these).
	TokenRefusal bool
}

// Allow reports whether the reason is that of an allow.
func (a Answer) Allow() bool { return a.Status == 200 }

// table is the one table of reasons, in documentation order.
var table = [...]Answer{
	{OK, 200, "", "", ChallengeNone, false},
	{Public, 200, "", "", ChallengeNone, false},
	{NoRule, 403, "access_denied", "no rule allows this request", ChallengeNone, false},
	{NoToken, 401, "unauthorized", "a bearer token is required", ChallengeBare, false},
	{InvalidToken, 401, "invalid_token", "the access token is invalid", ChallengeInvalidToken, true},
	{Expired, 401, "invalid_token", "the access token has expired", ChallengeInvalidToken, true},
	{BadSignature, 401, "invalid_token", "the access token signature is invalid", ChallengeInvalidToken, true},
	{UnknownIssuer, 401, "invalid_token", "the access token issuer is not trusted", ChallengeInvalidToken, true},
	{UnknownKey, 401, "invalid_token", "the access token signing key is unknown", ChallengeInvalidToken, true},
	{WrongAudience, 401, "invalid_token", "the access token is not meant for this service", ChallengeInvalidToken, true},
	{InvalidDPoPProof, 401, "invalid_dpop_proof", "the DPoP proof is invalid", ChallengeInvalidDPoPProof, false},
	{Forbidden, 403, "access_denied", "the access token does not grant this request", ChallengeNone, false},
	{InsufficientScope, 403, "insufficient_scope", "the access token lacks a required scope", ChallengeInsufficientScope, false},
	{BadRequest, 400, "invalid_request", "the request path is malformed or ambiguous", ChallengeNone, false},
	{Unavailable, 503, "temporarily_unavailable", "the identity provider's keys are not available yet", ChallengeNone, true},
	{IntrospectionUnavailable, 503, "temporarily_unavailable", "the identity provider cannot confirm the token now", ChallengeNone, true},
}

// All returns a copy of the table, in documentation order: for metric pre-initialisation and
// tests.
func All() []Answer { return slices.Clone(table[:]) }

// Codes returns every reason code, in documentation order.
func Codes() []Code {
	codes := make([]Code, len(table))
	for i := range table {
		codes[i] = table[i].Code
	}
	return codes
}

// Of returns the row of c, and whether c is in the table at all.
func Of(c Code) (Answer, bool) {
	for i := range table {
		if table[i].Code == c {
			return table[i], true
		}
	}
	return Answer{Code: c}, false
}

// String returns the code itself: the metric label and the log value.
func (c Code) String() string { return string(c) }
