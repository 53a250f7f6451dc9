package jwks

import (
	"errors"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// ParsePublicKey parses one JWK (RFC 7517 §4) that is to verify signatures of alg, with the
// checks every key of a key set passes (KeyFits, sane material, no private "d"), and returns it
// with its RFC 7638 thumbprint. It is for keys that come with a message rather than from an
// issuer's set: the key in a DPoP proof's header (package dpop). The error says why the key is
// refused.
func ParsePublicKey(raw []byte, alg jwa.SignatureAlgorithm) (Key, error) {
	p, skip := parseOne(raw, []jwa.SignatureAlgorithm{alg})
	if skip != nil {
		return Key{}, errors.New(skip.reason)
	}
	return p.Key, nil
}
