package server

import (
	"slices"
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

// TestKeptClaimsOfConditions: a condition's claims are kept; one that reads the whole claims
// map keeps every claim (nil).
func TestKeptClaimsOfConditions(t *testing.T) {
	for when, want := range map[string][]string{
		`claims.tenant_id == params.tenant`: {"tenant_id"},
		`"tenant_id" in claims`:             nil,
	} {
		cfg, err := config.Parse([]byte(`
issuers:
  - issuer: https://sso.example.com/realms/demo
    jwks_uri: https://sso.example.com/realms/demo/certs
    audiences: [orders-api]
identity_headers: { x-user-id: sub }
rules:
  - name: api
    match: { paths: ["/tenants/{tenant}/**"] }
    require: { when: '`+when+`' }
`), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		got := keptClaims(cfg)
		var names []string
		for _, p := range got {
			names = append(names, p.String())
		}
		if (got == nil) != (want == nil) || !slices.Equal(names, want) {
			t.Errorf("%s: keptClaims = %q (nil %v), want %q", when, names, got == nil, want)
		}
	}
}
