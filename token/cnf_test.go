package token

import (
	"context"
	"testing"
	"time"
)

// TestConfirmation: the cnf claim becomes Identity.Confirmation, and a cnf Portcullis cannot
// enforce refuses the token (invalid_token) rather than let it pass as a bearer token.
func TestConfirmation(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, nil)
	cases := []struct {
		name   string
		cnf    any // nil = no cnf claim
		want   Confirmation
		detail string // refused with this Detail
	}{
		{name: "no cnf", cnf: nil},
		{name: "jkt", cnf: map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}, want: Confirmation{JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}},
		{name: "x5t#S256", cnf: map[string]any{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}, want: Confirmation{X5TS256: "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}},
		{name: "jkt beside an unknown member", cnf: map[string]any{"jkt": "a", "kid": "k"}, want: Confirmation{JKT: "a"}},
		{name: "cnf a string", cnf: "jkt", detail: "the cnf claim is not an object"},
		{name: "jkt a number", cnf: map[string]any{"jkt": 1}, detail: "cnf.jkt is not a non-empty string"},
		{name: "x5t#S256 empty", cnf: map[string]any{"x5t#S256": ""}, detail: "cnf.x5t#S256 is not a non-empty string"},
		{name: "only a method not checked", cnf: map[string]any{"jwk": map[string]any{"kty": "EC"}, "kid": "k"}, detail: "the cnf claim names jwk, kid, confirmation methods Portcullis cannot check (it checks cnf.jkt and cnf.x5t#S256)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			extra := map[string]any{}
			if c.cnf != nil {
				extra["cnf"] = c.cnf
			}
			id, err := v.Verify(context.Background(), sign(t, rsHeader("rsa-1"), f.claims(extra), "RS256", f.rsaKey))
			if c.detail != "" {
				te, ok := err.(*Error)
				if !ok || te.Reason != "invalid_token" || te.Detail != c.detail {
					t.Fatalf("got %v, want invalid_token: %s", err, c.detail)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.Confirmation != c.want {
				t.Errorf("Confirmation = %+v, want %+v", id.Confirmation, c.want)
			}
		})
	}
}

// TestDPoPTyped: Keycloak's DPoP-bound access tokens carry typ "DPoP": accepted when the
// token is bound to a key (cnf.jkt), refused as any other unlisted typ otherwise.
func TestDPoPTyped(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, nil)
	bound := sign(t, rsHeader("rsa-1"), f.claims(map[string]any{"typ": "DPoP", "cnf": map[string]any{"jkt": "a"}}), "RS256", f.rsaKey)
	if _, err := v.Verify(context.Background(), bound); err != nil {
		t.Errorf("typ DPoP with cnf.jkt refused: %v", err)
	}
	for name, cnf := range map[string]any{"no cnf": nil, "cnf.x5t#S256 only": map[string]any{"x5t#S256": "a"}} {
		extra := map[string]any{"typ": "DPoP"}
		if cnf != nil {
			extra["cnf"] = cnf
		}
		_, err := v.Verify(context.Background(), sign(t, rsHeader("rsa-1"), f.claims(extra), "RS256", f.rsaKey))
		if te, ok := err.(*Error); !ok || te.Detail != `token type "DPoP" (typ claim) is not accepted as an access token` {
			t.Errorf("%s: typ DPoP: %v, want refused", name, err)
		}
	}
}

func TestProofPolicy(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, nil)
	p, ok := v.ProofPolicy(&Identity{Issuer: issA})
	if !ok || len(p.Algorithms) != 2 || p.Algorithms[0] != "RS256" || p.Leeway != 30*time.Second {
		t.Errorf("ProofPolicy(issA) = %+v, %v", p, ok)
	}
	if _, ok := v.ProofPolicy(&Identity{Issuer: "https://elsewhere"}); ok {
		t.Error("ProofPolicy of an unknown issuer is ok")
	}
	if got := v.Algorithms(); len(got) != 2 || got[0] != "RS256" || got[1] != "ES256" {
		t.Errorf("Algorithms() = %v, want [RS256 ES256]", got)
	}
}
