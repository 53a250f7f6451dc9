package token

import (
	"crypto/sha256"

	lru "github.com/hashicorp/golang-lru/v2"
)

// KeyPresence reports whether a key, named by its RFC 7638 thumbprint, is still in an issuer's
// current set. *jwks.Cache implements it.
type KeyPresence interface {
	Contains(thumbprint string) bool
}

// cache remembers verified identities by the SHA-256 of the token, so a repeated token skips
// parsing and the signature check. A hit is re-checked against the clock (exp, nbf) and against
// the issuer's current key set, so an entry never outlives its token or its key.
type cache struct {
	lru     *lru.Cache[[sha256.Size]byte, *Identity]
	counted func(hit bool)
}

func newCache(size int, counted func(hit bool)) (*cache, error) {
	if size <= 0 {
		return nil, nil
	}
	l, err := lru.New[[sha256.Size]byte, *Identity](size)
	if err != nil {
		return nil, err
	}
	if counted == nil {
		counted = func(bool) {}
	}
	return &cache{lru: l, counted: counted}, nil
}
