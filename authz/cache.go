package authz

import (
	"context"
	"crypto/sha256"
	"unsafe"

	lru "github.com/hashicorp/golang-lru/v2"
)

// tokenCache remembers verified tokens, keyed by the token's SHA-256, so a repeated token skips
// parsing, the signature check and header rendering. The digest (not the token) is the key: an
// entry then costs about 1.5 KiB rather than 3 KiB with a Keycloak token, and no request's
// header string is kept alive by the cache. A hit is re-checked with the verifier's
// Fresh (exp, nbf, and whether the signing key is still published) before it is used; the
// request-dependent checks (rules) always run.
type tokenCache struct {
	lru     *lru.Cache[[sha256.Size]byte, *identity]
	counted func(hit bool)
}

// tokenKey is the cache key of a raw token.
func tokenKey(raw string) [sha256.Size]byte {
	// The hash only reads the bytes: hashing the string's own memory avoids copying a
	// kilobyte-sized token on every request.
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
}

func newTokenCache(size int, counted func(hit bool)) *tokenCache {
	if size <= 0 {
		return nil
	}
	l, err := lru.New[[sha256.Size]byte, *identity](size)
	if err != nil {
		return nil // only for size <= 0, excluded above
	}
	if counted == nil {
		counted = func(bool) {}
	}
	return &tokenCache{lru: l, counted: counted}
}

// identify verifies a token, or finds it in the token cache still fresh (cached is then true).
func (e *Engine) identify(ctx context.Context, raw string) (ci *identity, cached bool, err error) {
	var key [sha256.Size]byte
	if e.cache != nil {
		key = tokenKey(raw)
		if ci, ok := e.cache.lru.Get(key); ok {
			if e.verifier.Fresh(ci.id) {
				e.cache.counted(true)
				return ci, true, nil
			}
			// Expired, or its key was rotated out: verify afresh for the precise reason.
			e.cache.lru.Remove(key)
		}
		e.cache.counted(false)
	}
	id, err := e.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, false, err
	}
	ci = e.render(id)
	if e.cache != nil {
		ci.key, ci.hasKey = key, true
		e.cache.lru.Add(key, ci)
	}
	return ci, false, nil
}
