package config

import (
	"fmt"
	"strings"
	"time"
)

// DPoP says how DPoP proofs (RFC 9449) are checked. DPoP itself needs no setting: a token sent
// as `Authorization: DPoP` with a DPoP header is accepted wherever a Bearer token is.
type DPoP struct {
	// MaxAge is how old a proof may be: its iat must lie in [now − max_age − leeway,
	// now + leeway], with the leeway of the token's issuer. It is also how long a proof's jti is
	// remembered against replay. Default 60s.
	MaxAge time.Duration `yaml:"max_age"`
	// ForwardedOrigin takes the scheme and authority of the URI a proof's htu is compared with
	// from X-Forwarded-Proto and X-Forwarded-Host (their first values) when the request carries
	// them, instead of from the request Envoy or the forward-auth proxy saw. For a proxy in
	// front that rewrites the host; only the headers that proxy itself sets may be trusted.
	ForwardedOrigin bool `yaml:"forwarded_origin"`
}

// DefaultDPoPMaxAge is dpop.max_age's default.
const DefaultDPoPMaxAge = 60 * time.Second

// MTLS says where the client certificate of a certificate-bound token (cnf.x5t#S256, RFC 8705)
// is read from.
type MTLS struct {
	// ClientCertHeader, when set, is the header a TLS-terminating proxy passes the client
	// certificate in, trusted instead of Envoy's attributes.source.certificate and removed from
	// the upstream request: "x-forwarded-client-cert" (Envoy's format: the Cert or Hash of its
	// first element) or "client-cert" (RFC 9440). Only a proxy that sets (never passes on) the
	// header may be trusted with it.
	ClientCertHeader string `yaml:"client_cert_header"`
}

// The headers mtls.client_cert_header may name.
const (
	ClientCertXFCC    = "x-forwarded-client-cert"
	ClientCertRFC9440 = "client-cert"
)

// maxDPoPMaxAge bounds dpop.max_age: a longer window keeps more proofs in the replay cache and
// lets a captured proof be replayed for longer.
const maxDPoPMaxAge = 10 * time.Minute

func (c *Config) validateSender(errs *[]string) {
	if a := c.DPoP.MaxAge; a <= 0 || a > maxDPoPMaxAge {
		*errs = append(*errs, fmt.Sprintf("dpop.max_age: %s is out of range; use a duration above 0s and at most %s (default %s)", a, maxDPoPMaxAge, DefaultDPoPMaxAge))
	}
	switch h := c.MTLS.ClientCertHeader; strings.ToLower(h) {
	case "", ClientCertXFCC, ClientCertRFC9440:
	default:
		*errs = append(*errs, fmt.Sprintf("mtls.client_cert_header: %q is not a choice; use %q (Envoy's format), %q (RFC 9440), or leave it out to read Envoy's attributes.source.certificate", h, ClientCertXFCC, ClientCertRFC9440))
	}
}
