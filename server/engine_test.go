package server

import (
	"testing"

	"github.com/portcullis-authz/portcullis/config"
)

// TestKeptClaimsNeverNil: with no claim rule and identity headers read from the Identity's own
// fields only, identities keep no claim at all (nil would tell the verifier to keep them all).
func TestKeptClaimsNeverNil(t *testing.T) {
	cfg, err := config.Parse([]byte(`
issuers:
  - issuer: https://sso.example.com/realms/demo
    jwks_uri: https://sso.example.com/realms/demo/certs
    audiences: [orders-api]
identity_headers: { x-user-id: sub, x-user-roles: roles }
rules:
  - name: api
    match: { paths: ["/api/**"] }
`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got := keptClaims(cfg); got == nil || len(got) != 0 {
		t.Errorf("keptClaims = %#v, want an empty, non-nil list", got)
	}
}
