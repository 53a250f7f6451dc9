package token

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/portcullis-authz/portcullis/reason"
)

// IsOpaque reports whether a raw token is opaque: neither a compact JWS (three parts whose
// first decodes as a JSON object), nor a JWE (five parts), nor the JSON serialisation. An
// opaque token names no issuer; only the issuer that introspects opaque tokens may be asked
// about it. Anything JWS-shaped is verified with keys and never taken for opaque, so a token of
// another issuer is never sent to the one that introspects.
func IsOpaque(raw string) bool {
	if raw == "" || raw[0] == '{' {
		return false
	}
	switch strings.Count(raw, ".") {
	case 4:
		return false
	case 2:
		h, _, _ := strings.Cut(raw, ".")
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(h, "="))
		// JSON may begin with white space, which the JWS parser accepts too.
		b = bytes.TrimLeft(b, " \t\r\n")
		return err != nil || len(b) == 0 || b[0] != '{'
	}
	return true
}

// MaxBytes is tokens.max_bytes: a larger token is refused unread, and never sent to be
// introspected.
func (v *Verifier) MaxBytes() int { return v.maxBytes }

// Introspected builds the identity of an opaque token from the claims of an active
// introspection answer (RFC 7662 §2.2) given by the endpoint of issuer (its configured
// issuer). The claims are held to what a verified token's are: iss must be that issuer (or one
// of its aliases), exp must be present and not past, aud, the authorized party and typ are
// checked as the issuer's settings say, and its cnf binds the token as a JWT's does. Every failure
// is an *Error.
func (v *Verifier) Introspected(issuer string, answer map[string]any) (*Identity, error) {
	is, ok := v.issuers[issuer]
	if !ok || is.Issuer != issuer {
		return nil, refuse(reason.UnknownIssuer, "issuer %q is not configured", issuer)
	}
	// The answer is read as a token's payload is, through the one claims reader: encoded
	// back to JSON (it was decoded from JSON, so it encodes) and scanned.
	doc, err := json.Marshal(answer)
	if err != nil {
		return nil, refuse(reason.InvalidToken, "introspection answer: %v", err)
	}
	var members [topMembers]member
	var cl claims
	if cl.p, err = scanPayload(doc, &members); err != nil {
		return nil, refuse(reason.InvalidToken, "introspection answer: %v", err)
	}
	if terr := cl.readRegistered(); terr != nil {
		terr.Detail = "introspection answer: " + terr.Detail
		return nil, terr
	}
	if other, tenant, ok := v.route(cl.iss); !ok || other != is || tenant != "" {
		return nil, refuse(reason.InvalidToken, "introspection answer: iss %q is not the introspecting issuer %s", cl.iss, issuer)
	}
	if terr := is.checkClaims(&cl, &header{}, v.now()); terr != nil {
		terr.Detail = "introspection answer: " + terr.Detail
		return nil, terr
	}
	// An answer's cnf binds the token as a JWT's does (RFC 9449 §6.2, RFC 8705 §3.2).
	cnf, terr := readConfirmation(&cl.p)
	if terr != nil {
		terr.Detail = "introspection answer: " + terr.Detail
		return nil, terr
	}
	id := is.identity(&cl, "", v.keep)
	id.Introspected, id.Confirmation = true, cnf
	return id, nil
}
