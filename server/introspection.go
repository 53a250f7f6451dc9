package server

import (
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-authz/portcullis/authz"
	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/introspect"
)

// introspection is what building the issuers' introspectors needs beside the configuration.
// A nil *introspection builds none (`portcullis test`, which fetches nothing).
type introspection struct {
	metrics *introspect.Metrics // nil = not counted
	log     *slog.Logger
	tracer  trace.Tracer // traces the calls (introspect.Options.Tracer); nil = tracing off
}

// build returns the introspector of every issuer with introspection, by every spelling of
// its iss (issuer and aliases), and the one that takes opaque tokens (nil when none does). The
// client secrets are those config.Load read; the HTTP clients are the issuers' own
// (issuerClient: ca_file, client certificate and proxy_url, as for their key sets). A reload
// builds new ones (and so empties their caches).
func (ib *introspection) build(cfg *config.Loaded) (map[string]authz.Introspector, authz.Introspector, error) {
	if ib == nil {
		return nil, nil, nil
	}
	var byIssuer map[string]authz.Introspector
	var opaque authz.Introspector
	for i, is := range cfg.Issuers {
		c := is.Introspection
		if c == nil {
			continue
		}
		in, err := introspect.New(introspect.Options{
			Issuer:           is.Issuer,
			Endpoint:         c.Endpoint,
			ClientID:         c.ClientID,
			ClientSecret:     cfg.IssuerFiles[i].IntrospectionSecret.Reveal(),
			HTTPClient:       issuerClient(cfg, i, c.Timeout),
			Timeout:          c.Timeout,
			CacheTTL:         c.CacheTTL,
			NegativeCacheTTL: c.NegativeCacheTTL,
			CacheSize:        cfg.Cache.Introspection,
			Metrics:          ib.metrics,
			Logger:           ib.log,
			Tracer:           ib.tracer,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("issuers[%d].introspection: %w", i, err)
		}
		if byIssuer == nil {
			byIssuer = map[string]authz.Introspector{}
		}
		for _, spelling := range append([]string{is.Issuer}, is.IssuerAliases...) {
			byIssuer[spelling] = in
		}
		if c.OpaqueTokens {
			opaque = in
		}
	}
	return byIssuer, opaque, nil
}
