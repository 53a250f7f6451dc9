package authz

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestOpaqueTokenBinding: an introspection answer that names a confirmation (cnf, RFC 7662
// §2.2 with RFC 9449 §6.2 and RFC 8705 §3.2) binds the opaque token as a JWT's cnf binds it:
// a DPoP-bound opaque token sent as Bearer, or a certificate-bound one over a connection
// without that certificate, is refused; a cnf naming only methods Portcullis cannot check too.
func TestOpaqueTokenBinding(t *testing.T) {
	const opaque = "2YotnFZFEjr1zCsicMWpAA"
	exp := time.Now().Add(time.Hour)
	tests := []struct {
		name string
		cnf  map[string]any
		want string
	}{
		{"dpop-bound as bearer", map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
			"401 invalid_token the token is bound to a DPoP key (cnf.jkt) but came as a Bearer token; send it as Authorization: DPoP with a DPoP proof (RFC 9449 §7.2)"},
		{"certificate-bound without a certificate", map[string]any{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"},
			"401 invalid_token the token is bound to a client certificate (cnf.x5t#S256), and the connection presented no client certificate (Envoy: include_peer_certificate: true on the ext_authz filter, and a listener that requests client certificates)"},
		{"unchecked confirmation method", map[string]any{"jwk": map[string]any{"kty": "EC"}},
			"401 invalid_token introspection answer: the cnf claim names jwk, confirmation methods Portcullis cannot check (it checks cnf.jkt and cnf.x5t#S256)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newIDPEndpoint(t)
			p.claims = withClaim(opaqueClaims(exp), "cnf", tt.cnf)
			e, _ := introspectingEngine(t, newTestIntrospector(t, p, nil), true)
			for i := range 2 { // the second decision is served from the caches
				d := e.Decide(context.Background(), request("/api/orders/1", opaque))
				if got := fmt.Sprintf("%d %s %s", d.Status, d.Reason, d.Detail); got != tt.want {
					t.Errorf("decision %d\n got: %s\nwant: %s", i, got, tt.want)
				}
			}
		})
	}
}
