package authz

import (
	"context"
	"crypto/sha256"
	"unsafe"

	"github.com/maypok86/otter/v2"
)

// tokenCache remembers verified tokens, keyed by the token's SHA-256, so a repeated token skips
// parsing, the signature check and header rendering. The digest (not the token) is the key: an
// entry then costs about 1.5 KiB rather than 3 KiB with a Keycloak token, and no request's
// header string is kept alive by the cache. A hit is re-checked with the verifier's
// Fresh (exp, nbf, and whether the signing key is still published) before it is used; the
// request-dependent checks (rules) always run.
//
// A hit takes no lock that all requests share: otter reads its concurrent hash table without
// locking and records the access in striped, lossy buffers that one goroutine at a time drains
// into the eviction policy (W-TinyLFU) when they fill. An LRU behind one mutex, as before,
// made every cached decision of every core take the same lock; sharding it would still put all
// the requests of one popular token (a service account's, say) on one shard's lock.
type tokenCache struct {
	c       *otter.Cache[[sha256.Size]byte, *identity]
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
	c, err := otter.New(&otter.Options[[sha256.Size]byte, *identity]{MaximumSize: size})
	if err != nil {
		return nil // only for size < 0, excluded above
	}
	if counted == nil {
		counted = func(bool) {}
	}
	return &tokenCache{c: c, counted: counted}
}

// identify verifies a token, or finds it in the token cache still fresh (cached is then true).
func (e *Engine) identify(ctx context.Context, raw string) (ci *identity, cached bool, err error) {
	var key [sha256.Size]byte
	if e.cache != nil {
		key = tokenKey(raw)
		if ci, ok := e.cache.c.GetIfPresent(key); ok {
			if e.verifier.Fresh(ci.id) {
				e.cache.counted(true)
				return ci, true, nil
			}
			// Expired, or its key was rotated out: verify afresh for the precise reason.
			e.cache.c.Invalidate(key)
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
		e.cache.c.Set(key, ci)
	}
	return ci, false, nil
}
