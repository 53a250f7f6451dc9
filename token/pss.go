package token

import (
	"crypto"
	"crypto/rsa"
	_ "crypto/sha256" // registers SHA-256 for crypto.Hash.New
	_ "crypto/sha512" // registers SHA-384 and SHA-512
	"fmt"
)

// pssVerifier checks RSASSA-PSS signatures (PS256, PS384, PS512) with the one salt length RFC
// 7518 §3.5 allows: the size of the hash output. jwx's own PSS verifier uses
// rsa.PSSSaltLengthAuto, which also accepts any other salt length, none included; so these
// algorithms do not go through jwx. It implements jws.Verifier.
type pssVerifier struct{ hash crypto.Hash }

func (p pssVerifier) Verify(input, signature []byte, key any) error {
	pub, ok := key.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("token: a PSS signature needs an *rsa.PublicKey, not %T", key)
	}
	h := p.hash.New()
	h.Write(input)
	return rsa.VerifyPSS(pub, p.hash, h.Sum(nil), signature, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: p.hash})
}
