package token

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/portcullis-authz/portcullis/reason"
)

func TestIsOpaque(t *testing.T) {
	tests := []struct {
		raw    string
		opaque bool
	}{
		{enc(rsHeader("k")) + "." + enc(`{"iss":"x"}`) + ".c2ln", false},                                 // a JWS: verified with keys
		{enc(" \n"+`{"alg":"RS256","kid":"k","typ":"JWT"}`) + "." + enc(`{"iss":"x"}`) + ".c2ln", false}, // a JWS whose header starts with white space
		{"a.b.c.d.e", false},              // a JWE: refused as before
		{`{"payload":"x"}`, false},        // the JSON serialisation: refused as before
		{"", false},                       // empty: refused as before
		{"2YotnFZFEjr1zCsicMWpAA", true},  // RFC 6749's example access token
		{"ya29.a0AfH6SMBx", true},         // one dot
		{"abc.def.ghi", true},             // three parts, but no JSON header
		{enc("[1]") + ".e30.c2ln", true},  // a header that is not an object
		{"aGVsbG8.d29ybGQ.c2ln", true},    // base64url, not JSON
		{"!!!." + enc(`{}`) + ".x", true}, // not base64url
	}
	for _, tt := range tests {
		if got := IsOpaque(tt.raw); got != tt.opaque {
			t.Errorf("IsOpaque(%q) = %v, want %v", tt.raw, got, tt.opaque)
		}
	}
}

// answer is claims as an introspection answer decodes them (numbers float64).
func answer(t *testing.T, claims map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestIntrospected(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, func(ic *IssuerConfig) { ic.Aliases = []string{"https://alias.example"} })
	tests := []struct {
		name   string
		issuer string
		extra  map[string]any
		reason reason.Code
		err    string
	}{
		{name: "active", issuer: issA},
		{name: "alias", issuer: issA, extra: map[string]any{"iss": "https://alias.example"}},
		{name: "other issuer's iss", issuer: issA, extra: map[string]any{"iss": issB}, reason: reason.InvalidToken,
			err: `invalid_token: introspection answer: iss "https://other.example.com" is not the introspecting issuer https://sso.example.com/realms/demo`},
		{name: "unknown iss", issuer: issA, extra: map[string]any{"iss": "https://evil.example"}, reason: reason.InvalidToken,
			err: `invalid_token: introspection answer: iss "https://evil.example" is not the introspecting issuer https://sso.example.com/realms/demo`},
		{name: "no iss", issuer: issA, extra: map[string]any{"iss": nil}, reason: reason.InvalidToken,
			err: "invalid_token: introspection answer: the iss claim is missing"},
		{name: "no exp", issuer: issA, extra: map[string]any{"exp": nil}, reason: reason.InvalidToken,
			err: "invalid_token: introspection answer: the exp claim is missing; access tokens must expire"},
		{name: "expired", issuer: issA, extra: map[string]any{"exp": f.now.Add(-time.Hour).Unix()}, reason: reason.Expired,
			err: "expired: introspection answer: expired 1h0m0s ago"},
		{name: "wrong audience", issuer: issA, extra: map[string]any{"aud": "billing"}, reason: reason.WrongAudience,
			err: `wrong_audience: introspection answer: aud is ["billing"]; expected one of ["orders-api"]`},
		{name: "refresh token", issuer: issA, extra: map[string]any{"typ": "Refresh"}, reason: reason.InvalidToken,
			err: `invalid_token: introspection answer: token type "Refresh" (typ claim) is not accepted as an access token`},
		{name: "issuer not configured", issuer: "https://alias.example", reason: reason.UnknownIssuer,
			err: `unknown_issuer: issuer "https://alias.example" is not configured`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Introspected(tt.issuer, answer(t, f.claims(tt.extra)))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err || refusal(t, err) != tt.reason {
					t.Fatalf("err = %v\nwant %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprintf("%s %v %v %v %v", id.Subject, id.Roles, id.Scopes, id.Introspected, id.KeyThumbprint == "")
			if want := "user-1 [account:view-profile orders-api:writer user] [openid orders:write] true true"; got != want {
				t.Errorf("identity %s\nwant     %s", got, want)
			}
		})
	}
}
