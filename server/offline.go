package server

import (
	"fmt"

	"github.com/portcullis-authz/portcullis/authz"
	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/jwks"
)

// Offline builds the engine serve builds for cfg — the same rules, token sources, identity
// headers, token cache and issuer checks (audiences, authorized parties, algorithms, leeway,
// token types) — but with the key set of issuers[i] replaced by sets[i]: nothing is fetched,
// read or persisted, whatever jwks_uri, jwks_file or jwks_cache_dir say. `portcullis test`
// uses it with keys it generates for the run. Nor is any token introspected: a rule with
// require.active denies (403), an opaque token is refused (401).
func Offline(cfg *config.Loaded, sets []*jwks.Set) (*authz.Engine, error) {
	if len(sets) != len(cfg.Issuers) {
		return nil, fmt.Errorf("server: %d key sets for %d issuers", len(sets), len(cfg.Issuers))
	}
	caches := make([]*jwks.Cache, len(cfg.Issuers))
	for i, is := range cfg.Issuers {
		c, err := jwks.New(jwks.Options{Issuer: is.Issuer, StaticSet: sets[i]})
		if err != nil {
			return nil, fmt.Errorf("issuers[%d]: %w", i, err)
		}
		caches[i] = c
	}
	return newEngine(cfg, caches, nil, nil, nil, nil) // no introspection either: nothing is fetched
}
