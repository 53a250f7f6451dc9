package authz

import "github.com/portcullis-authz/portcullis/token"

// Reason is the fixed snake_case code of a decision, shared by deny answers, logs and the
// `reason` label of portcullis_decisions_total.
type Reason string

// The fixed set of decision reasons (docs/decisions.md, Reasons; the `reason` label of
// docs/metrics.md).
const (
	ReasonOK                Reason = "ok"
	ReasonPublic            Reason = "public"
	ReasonNoRule            Reason = "no_rule"
	ReasonNoToken           Reason = "no_token"
	ReasonInvalidToken      Reason = "invalid_token"
	ReasonExpired           Reason = "expired"
	ReasonBadSignature      Reason = "bad_signature"
	ReasonUnknownIssuer     Reason = "unknown_issuer"
	ReasonUnknownKey        Reason = "unknown_key"
	ReasonWrongAudience     Reason = "wrong_audience"
	ReasonForbidden         Reason = "forbidden"
	ReasonInsufficientScope Reason = "insufficient_scope"
	ReasonBadRequest        Reason = "bad_request"
	ReasonUnavailable       Reason = "unavailable"
)

// answer is how a reason is told to the client: the HTTP status, the error code of the JSON body
// (and of WWW-Authenticate for 401 and scope failures), and a generic description that never
// echoes the token, a claim value or key material.
type answer struct {
	status      int
	code        string // body "error"; for 401 also the WWW-Authenticate error (except no_token)
	description string
}

// answers is the one table from reason to wire answer.
var answers = map[Reason]answer{
	ReasonOK:                {200, "", ""},
	ReasonPublic:            {200, "", ""},
	ReasonNoRule:            {403, "access_denied", "no rule allows this request"},
	ReasonNoToken:           {401, "unauthorized", "a bearer token is required"},
	ReasonInvalidToken:      {401, "invalid_token", "the access token is invalid"},
	ReasonExpired:           {401, "invalid_token", "the access token has expired"},
	ReasonBadSignature:      {401, "invalid_token", "the access token signature is invalid"},
	ReasonUnknownIssuer:     {401, "invalid_token", "the access token issuer is not trusted"},
	ReasonUnknownKey:        {401, "invalid_token", "the access token signing key is unknown"},
	ReasonWrongAudience:     {401, "invalid_token", "the access token is not meant for this service"},
	ReasonForbidden:         {403, "access_denied", "the access token does not grant this request"},
	ReasonInsufficientScope: {403, "insufficient_scope", "the access token lacks a required scope"},
	ReasonBadRequest:        {400, "invalid_request", "the request path is malformed or ambiguous"},
	ReasonUnavailable:       {503, "temporarily_unavailable", "the identity provider's keys are not available yet"},
}

// Reasons lists every decision reason, for metrics pre-initialisation and tests.
func Reasons() []Reason {
	return []Reason{ReasonOK, ReasonPublic, ReasonNoRule, ReasonNoToken, ReasonInvalidToken, ReasonExpired,
		ReasonBadSignature, ReasonUnknownIssuer, ReasonUnknownKey, ReasonWrongAudience, ReasonForbidden,
		ReasonInsufficientScope, ReasonBadRequest, ReasonUnavailable}
}

// fromToken maps a token refusal to a decision reason.
func fromToken(r token.Reason) Reason {
	switch r {
	case token.ReasonExpired:
		return ReasonExpired
	case token.ReasonBadSignature:
		return ReasonBadSignature
	case token.ReasonUnknownIssuer:
		return ReasonUnknownIssuer
	case token.ReasonUnknownKey:
		return ReasonUnknownKey
	case token.ReasonWrongAudience:
		return ReasonWrongAudience
	case token.ReasonUnavailable:
		return ReasonUnavailable
	default:
		return ReasonInvalidToken
	}
}
