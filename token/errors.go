package token

import (
	"errors"
	"fmt"
)

// Reason is the fixed snake_case code of a refused token. The same codes appear in deny
// answers, logs and the `reason` label of portcullis_decisions_total.
type Reason string

// Reasons a token is refused.
const (
	ReasonInvalid       Reason = "invalid_token"  // malformed, wrong typ/azp/alg, too large, missing claims
	ReasonExpired       Reason = "expired"        // exp in the past beyond leeway
	ReasonBadSignature  Reason = "bad_signature"  // the signature does not verify with the issuer's key
	ReasonUnknownIssuer Reason = "unknown_issuer" // iss names no configured issuer
	ReasonUnknownKey    Reason = "unknown_key"    // kid not in the issuer's key set after a refresh
	ReasonWrongAudience Reason = "wrong_audience" // aud holds none of the configured audiences
	ReasonUnavailable   Reason = "unavailable"    // the issuer's keys were never loaded: fail closed with 503
)

// Error is a refused token. Reason is safe to show to the client; Detail is precise and meant for
// logs and `portcullis check` (it may name claim values, never the token or key material).
type Error struct {
	Reason Reason
	Detail string
	// Hint, when set, says what to change (for `portcullis check`).
	Hint string
	Err  error
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return string(e.Reason)
	}
	return string(e.Reason) + ": " + e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

func refuse(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the reason of a verification error (ReasonInvalid for foreign errors, so an
// unexpected failure still denies).
func ReasonOf(err error) Reason {
	var te *Error
	if errors.As(err, &te) {
		return te.Reason
	}
	return ReasonInvalid
}
