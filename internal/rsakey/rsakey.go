// Package rsakey verifies RSASSA-PKCS1-v1_5 signatures (RFC 8017 §8.2.2: RS256, RS384 and RS512
// of RFC 7518 §3.3) with an RSA public key prepared once.
//
// crypto/rsa rebuilds a public key's Montgomery modulus on every VerifyPKCS1v15 call, which is
// about a third of the cost of an RS256 check, and offers no way to keep it for a key that
// verifies every token of an issuer. A Public keeps it (filippo.io/bigmod, the standard
// library's own modular arithmetic, exported), and its check is crypto/rsa's, step for step:
// the signature is exactly k octets, its integer is below the modulus, and s^e mod n must equal,
// byte for byte, the one encoding EMSA-PKCS1-v1_5 gives the digest (RFC 8017 §9.2). Nothing is
// parsed from the decrypted block. The tests hold it to crypto/rsa on every outcome.
package rsakey

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"

	"filippo.io/bigmod"
)

// Bounds of the keys New accepts: crypto/rsa's own minimum for verification, and MaxBits, the
// largest modulus a key set accepts (jwks).
const (
	minBits = 1024
	MaxBits = 16384
)

// ErrVerification is the answer to a signature that does not verify, for whatever reason.
var ErrVerification = errors.New("rsakey: verification error")

// Public is an RSA public key prepared for verifying signatures. It is safe for concurrent use.
type Public struct {
	// Key is the key as given to New; the caller must not modify it.
	Key *rsa.PublicKey
	n   *bigmod.Modulus
}

// New prepares pub. It refuses what crypto/rsa would refuse to verify with: a modulus that is
// even or outside 1024–16384 bits, and an exponent that is even, below 3 or above 2³¹−1.
func New(pub *rsa.PublicKey) (*Public, error) {
	if pub == nil || pub.N == nil {
		return nil, errors.New("rsakey: no key")
	}
	if bits := pub.N.BitLen(); bits < minBits || bits > MaxBits {
		return nil, fmt.Errorf("rsakey: modulus of %d bits is outside %d–%d", bits, minBits, MaxBits)
	}
	if pub.N.Bit(0) == 0 {
		return nil, errors.New("rsakey: even modulus")
	}
	if pub.E < 3 || pub.E > 1<<31-1 || pub.E&1 == 0 {
		return nil, errors.New("rsakey: exponent out of range")
	}
	n, err := bigmod.NewModulus(pub.N.Bytes())
	if err != nil {
		return nil, fmt.Errorf("rsakey: %w", err)
	}
	return &Public{Key: pub, n: n}, nil
}

// digestInfo is the DER prefix of the DigestInfo of each hash (RFC 8017 §9.2, note 1).
var digestInfo = map[crypto.Hash][]byte{
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

// VerifyPKCS1v15 checks sig, an RSASSA-PKCS1-v1_5 signature of the digest hashed made with
// hash (SHA-256, SHA-384 or SHA-512), as rsa.VerifyPKCS1v15 does. It returns nil when the
// signature is valid and ErrVerification, or an error naming a wrong argument, otherwise.
func (p *Public) VerifyPKCS1v15(hash crypto.Hash, hashed, sig []byte) error {
	prefix, ok := digestInfo[hash]
	if !ok {
		return fmt.Errorf("rsakey: hash %v is not SHA-256, SHA-384 or SHA-512", hash)
	}
	if len(hashed) != hash.Size() {
		return errors.New("rsakey: input must be hashed message")
	}
	k := p.n.Size()
	// RFC 8017 §8.2.2 step 1: a signature that is not k octets long is invalid.
	if len(sig) != k {
		return ErrVerification
	}
	// Step 2 (RSAVP1): s must be below n; m = s^e mod n.
	s, err := bigmod.NewNat().SetBytes(sig, p.n)
	if err != nil {
		return ErrVerification
	}
	em := bigmod.NewNat().ExpShortVarTime(s, uint(p.Key.E), p.n).Bytes(p.n)
	// Step 3 and 4: em must be 0x00 0x01 PS 0x00 DigestInfo digest, PS being k − tLen − 3 (at
	// least 8) octets 0xff, compared in full; the values are public, the comparison is constant
	// time anyway.
	tLen := len(prefix) + len(hashed)
	if k < tLen+11 {
		return ErrVerification
	}
	ps := k - tLen - 1
	good := subtle.ConstantTimeByteEq(em[0], 0x00) &
		subtle.ConstantTimeByteEq(em[1], 0x01) &
		subtle.ConstantTimeCompare(em[2:ps], ff[:ps-2]) &
		subtle.ConstantTimeByteEq(em[ps], 0x00) &
		subtle.ConstantTimeCompare(em[ps+1:ps+1+len(prefix)], prefix) &
		subtle.ConstantTimeCompare(em[k-len(hashed):], hashed)
	if good != 1 {
		return ErrVerification
	}
	return nil
}

// ff is the longest padding string a key New accepts can need.
var ff = bytes.Repeat([]byte{0xff}, MaxBits/8)
