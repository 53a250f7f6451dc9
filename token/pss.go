package token

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"

	"github.com/portcullis-authz/portcullis/internal/rsakey"
)

// pssVerifier checks RSASSA-PSS signatures (PS256, PS384, PS512) with the one salt length RFC
// 7518 §3.5 allows: the size of the hash output. jwx's own PSS verifier uses
// rsa.PSSSaltLengthAuto, which also accepts any other salt length, none included; so these
// algorithms do not go through jwx. It implements jws.Verifier; key is an *rsa.PublicKey or a
// key set's *rsakey.Public.
type pssVerifier struct{ hash crypto.Hash }

func (p pssVerifier) Verify(input, signature []byte, key any) error {
	var pub *rsa.PublicKey
	switch k := key.(type) {
	case *rsakey.Public:
		pub = k.Key
	case *rsa.PublicKey:
		pub = k
	default:
		return fmt.Errorf("token: a PSS signature needs an *rsa.PublicKey, not %T", key)
	}
	var buf [sha512.Size]byte
	return rsa.VerifyPSS(pub, p.hash, digest(&buf, p.hash, input), signature, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: p.hash})
}

// pkcs1Verifier checks RSASSA-PKCS1-v1_5 signatures (RS256, RS384, RS512, RFC 7518 §3.3). A
// key set's key comes prepared (*rsakey.Public, its modulus computed once when the set was
// loaded, or a DPoP proof's key when it was parsed), which saves about a third of crypto/rsa's
// cost per signature of a set's key; any other *rsa.PublicKey goes to crypto/rsa. It
// implements jws.Verifier.
type pkcs1Verifier struct{ hash crypto.Hash }

func (p pkcs1Verifier) Verify(input, signature []byte, key any) error {
	var buf [sha512.Size]byte
	switch pub := key.(type) {
	case *rsakey.Public:
		return pub.VerifyPKCS1v15(p.hash, digest(&buf, p.hash, input), signature)
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(pub, p.hash, digest(&buf, p.hash, input), signature)
	}
	return fmt.Errorf("token: an RSA signature needs an *rsa.PublicKey, not %T", key)
}

// digest hashes input with h (SHA-256, SHA-384 or SHA-512) into buf.
func digest(buf *[sha512.Size]byte, h crypto.Hash, input []byte) []byte {
	switch h {
	case crypto.SHA256:
		d := sha256.Sum256(input)
		return buf[:copy(buf[:], d[:])]
	case crypto.SHA384:
		d := sha512.Sum384(input)
		return buf[:copy(buf[:], d[:])]
	default:
		d := sha512.Sum512(input)
		return buf[:copy(buf[:], d[:])]
	}
}
