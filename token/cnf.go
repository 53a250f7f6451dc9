package token

import (
	"slices"
	"strings"

	"github.com/portcullis-authz/portcullis/reason"
)

// Confirmation is what a sender-constrained token is bound to (the `cnf` claim, RFC 7800 §3.1).
// The zero value is an unbound bearer token.
type Confirmation struct {
	// JKT is cnf.jkt: the RFC 7638 SHA-256 thumbprint of the DPoP key the token is bound to
	// (RFC 9449 §6.1); each request must carry a DPoP proof signed by that key.
	JKT string
	// X5TS256 is cnf.x5t#S256: the base64url SHA-256 of the DER client certificate the token is
	// bound to (RFC 8705 §3.1); each request must come over a connection with that certificate.
	X5TS256 string
}

// Bound reports whether the token names a key or a certificate.
func (c Confirmation) Bound() bool { return c.JKT != "" || c.X5TS256 != "" }

// Confirmation members Portcullis checks.
const (
	cnfJKT     = "jkt"
	cnfX5TS256 = "x5t#S256"
)

// readConfirmation reads the cnf claim. A cnf that is not an object, or whose jkt or
// x5t#S256 is not a non-empty string, refuses the token; so does a cnf naming only
// confirmation methods Portcullis cannot check (jwk, jku, kid, ...): accepting such a token as
// a bearer token would drop the binding its issuer asked for.
func readConfirmation(p *payload) (Confirmation, *Error) {
	raw, ok := p.get("cnf")
	if !ok {
		return Confirmation{}, nil
	}
	m, ok := decodeAny(raw).(map[string]any)
	if !ok {
		return Confirmation{}, refuse(reason.InvalidToken, "the cnf claim is not an object")
	}
	var c Confirmation
	for _, f := range []struct {
		name string
		dst  *string
	}{{cnfJKT, &c.JKT}, {cnfX5TS256, &c.X5TS256}} {
		x, ok := m[f.name]
		if !ok {
			continue
		}
		s, ok := x.(string)
		if !ok || s == "" {
			return Confirmation{}, refuse(reason.InvalidToken, "cnf.%s is not a non-empty string", f.name)
		}
		*f.dst = s
	}
	if !c.Bound() && len(m) > 0 {
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		slices.Sort(names)
		return Confirmation{}, refuse(reason.InvalidToken, "the cnf claim names %s, confirmation methods Portcullis cannot check (it checks cnf.jkt and cnf.x5t#S256)", strings.Join(names, ", "))
	}
	return c, nil
}

// dpopTyped reports whether a token's typ claim is "DPoP" and it is bound to a DPoP key: the
// access tokens Keycloak issues to a DPoP client say so. Such a token is an access token
// whatever token_types lists (which is there to refuse ID and refresh tokens); it is accepted
// only with the DPoP scheme and a proof of its key (RFC 9449 §7.2), which the engine enforces.
func dpopTyped(cl *claims) bool {
	if !strings.EqualFold(cl.typ, "DPoP") {
		return false
	}
	raw, ok := cl.p.get("cnf")
	if !ok {
		return false
	}
	cnf, _ := decodeAny(raw).(map[string]any)
	jkt, _ := cnf[cnfJKT].(string)
	return jkt != ""
}
