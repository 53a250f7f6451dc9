package server

import (
	"fmt"
	"log/slog"

	"github.com/portcullis-authz/portcullis/authz"
	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/dpop"
	"github.com/portcullis-authz/portcullis/jwks"
	"github.com/portcullis-authz/portcullis/token"
)

// newEngine assembles the decision engine for a loaded configuration and its issuers' caches
// (in issuer order), with the issuers' introspectors when ib is not nil (introspection.go).
// replay is the DPoP replay cache the engine uses, shared by the engines of successive
// configurations; nil gives the engine one of its own.
func newEngine(cfg *config.Loaded, caches []*jwks.Cache, m *authz.Metrics, log *slog.Logger, ib *introspection, replay *dpop.ReplayCache) (*authz.Engine, error) {
	issuers := make([]token.IssuerConfig, len(cfg.Issuers))
	for i, is := range cfg.Issuers {
		issuers[i] = token.IssuerConfig{
			Issuer:                is.Issuer,
			Aliases:               is.IssuerAliases,
			Tenants:               is.Tenants,
			AnyTenant:             is.InsecureAnyTenant,
			Keys:                  caches[i],
			Audiences:             is.Audiences,
			AudienceClaims:        is.AudienceClaims,
			AuthorizedParties:     is.AuthorizedParties,
			AuthorizedPartyClaims: is.AuthorizedPartyClaims,
			Algorithms:            is.Algorithms,
			Leeway:                is.Leeway,
			RolesClaims:           cfg.RolesClaims[i],
			TokenTypes:            is.TokenTypes,
		}
	}
	var lookups func(bool)
	if m != nil {
		lookups = m.TokenCacheLookup
	}
	v, err := token.NewVerifier(token.Options{
		Issuers:     issuers,
		MaxBytes:    cfg.Tokens.MaxBytes,
		KeepClaims:  keptClaims(cfg),
		KeepPayload: keepsPayload(cfg),
	})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	introspectors, opaque, err := ib.build(cfg)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return authz.NewEngine(authz.Options{
		Rules:                  cfg.RuleSet,
		Verifier:               v,
		Sources:                cfg.Tokens.Sources,
		IdentityHeaders:        cfg.Identity,
		ForwardToken:           cfg.ForwardToken,
		CacheSize:              cfg.Cache.Tokens,
		CacheLookups:           lookups,
		Paths:                  cfg.Paths.Options(),
		IdentityHeaderMaxBytes: cfg.IdentityHeadersMaxBytes,
		Log:                    log,
		Introspectors:          introspectors,
		Opaque:                 opaque,
		Sender: authz.SenderOptions{DPoPMaxAge: cfg.DPoP.MaxAge, ForwardedOrigin: cfg.DPoP.ForwardedOrigin,
			Replay: replay, ClientCertHeader: cfg.MTLS.ClientCertHeader},
	}), nil
}

// keepsPayload reports whether an identity header carries the whole payload.
func keepsPayload(cfg *config.Loaded) bool {
	for _, a := range cfg.Identity {
		if a.Field() == token.FieldPayload {
			return true
		}
	}
	return false
}

// keptClaims are the claim paths anything reads after verification: the rules' claim
// requirements and conditions and the identity headers that name a claim. Identities keep only
// the top-level claims these paths may read, so cached ones stay small. The list is never nil
// (to the verifier, nil means keep every claim) unless a rule's condition reads the claims in a
// way no path names.
func keptClaims(cfg *config.Loaded) []token.ClaimPath {
	if cfg.RuleSet.ReadsAllClaims() {
		return nil
	}
	keep := append([]token.ClaimPath{}, cfg.RuleSet.ClaimPaths()...)
	for _, a := range cfg.Identity {
		if a.Field() == token.FieldClaim {
			keep = append(keep, a.Path())
		}
	}
	return keep
}
