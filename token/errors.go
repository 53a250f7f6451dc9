package token

import (
	"errors"
	"fmt"

	"github.com/portcullis-authz/portcullis/reason"
)

// Error is a refused token. Reason is one of the token refusals of the reason table
// (reason.Answer.TokenRefusal) and is safe to show to the client; Detail is precise and meant for
// logs and `portcullis check` (it may name claim values, never the token or key material).
type Error struct {
	Reason reason.Code
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

func refuse(r reason.Code, format string, args ...any) *Error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the reason of a verification error: the *Error's reason when it is a token
// refusal of the reason table, and reason.InvalidToken otherwise (a foreign error, or a reason
// that is not a token refusal), so an unexpected failure still denies with 401.
func ReasonOf(err error) reason.Code {
	var te *Error
	if errors.As(err, &te) {
		if a, ok := reason.Of(te.Reason); ok && a.TokenRefusal {
			return te.Reason
		}
	}
	return reason.InvalidToken
}
