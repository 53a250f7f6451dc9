package token

import (
	"fmt"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/portcullis-authz/portcullis/reason"
)

// JWS is a compact JWS (RFC 7515 §7.1) split and decoded by the same strict parser the access
// tokens go through, before any signature check: for other JWTs Portcullis verifies itself, such
// as DPoP proofs (package dpop).
type JWS struct {
	// SigningInput is header "." payload, as signed.
	SigningInput string
	// Header and Payload are the decoded JSON objects; each is one object with no duplicate
	// member names.
	Header, Payload []byte
	Signature       []byte
}

// ParseJWS splits and decodes a compact JWS strictly: three parts of unpadded base64url, a
// header and a payload that are each one JSON object without duplicate names, no `crit`, no
// unencoded payload. Its errors are *Error (reason invalid_token), their Detail naming the
// defect.
func ParseJWS(raw string) (*JWS, error) {
	c, terr := parseCompact(raw)
	if terr != nil {
		return nil, terr
	}
	if err := checkJSONObject(c.payload); err != nil {
		return nil, refuse(reason.InvalidToken, "claims: %v", err)
	}
	return &JWS{SigningInput: c.signingInput, Header: c.headerJSON, Payload: c.payload, Signature: c.signature}, nil
}

// VerifySignature checks a JWS signature with a public key (a jwks.Key's Verifying(), or an
// *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey) by the verifiers access tokens use,
// RSASSA-PSS with its salt length fixed (pss.go). alg must be one of SupportedAlgorithms.
func VerifySignature(alg string, input string, signature []byte, key any) error {
	v, ok := verifiers[jwa.SignatureAlgorithm(alg)]
	if !ok {
		return fmt.Errorf("token: algorithm %q is not supported", alg)
	}
	return v.Verify([]byte(input), signature, key)
}

// ProofPolicy is what an issuer's configuration says of the proofs that accompany its tokens
// (DPoP, RFC 9449 §4.3): the algorithms allowed (its `algorithms`) and its clock leeway.
type ProofPolicy struct {
	Algorithms []string
	Leeway     time.Duration
}

// ProofPolicy returns the policy of the issuer that verified id; ok is false when no
// configured issuer routes id's iss any more.
func (v *Verifier) ProofPolicy(id *Identity) (ProofPolicy, bool) {
	is, _, ok := v.route(id.Issuer)
	if !ok {
		return ProofPolicy{}, false
	}
	return ProofPolicy{Algorithms: is.Algorithms, Leeway: is.Leeway}, true
}

// Algorithms returns every algorithm some issuer allows, in SupportedAlgorithms' order: the
// `algs` of a DPoP challenge when the issuer of the request is not known.
func (v *Verifier) Algorithms() []string {
	var out []string
	for _, a := range SupportedAlgorithms() {
		allowed := false
		for _, is := range v.issuers {
			allowed = allowed || slices.Contains(is.Algorithms, a)
		}
		for _, t := range v.templates {
			allowed = allowed || slices.Contains(t.is.Algorithms, a)
		}
		if allowed {
			out = append(out, a)
		}
	}
	return out
}
