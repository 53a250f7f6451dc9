package token

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portcullis-authz/portcullis/reason"
)

// TestVerifyRouting: tokens are routed by iss to an exact issuer, an alias or a {tenantid}
// template; a template's tenant must be listed (or any accepted) and equal the signed tid; the
// audience and authorized party are read from the configured claims, the first present wins.
func TestVerifyRouting(t *testing.T) {
	f := newFixture(t)
	const (
		tmplV2   = "https://login.microsoftonline.com/{tenantid}/v2.0"
		tmplV1   = "https://sts.windows.net/{tenantid}/"
		tenant   = "0f1e2d3c-0000-4000-8000-000000000001"
		other    = "9a8b7c6d-0000-4000-8000-000000000002"
		google   = "https://accounts.google.com"
		cognito  = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf"
		entraAud = "api://orders"
	)
	base := func(iss string) IssuerConfig {
		return IssuerConfig{Issuer: iss, Keys: f.keysA, Algorithms: []string{"RS256"}, Leeway: time.Second, TokenTypes: []string{"Bearer"}}
	}
	entra := base(tmplV2)
	entra.Aliases = []string{tmplV1}
	entra.Tenants = []string{tenant}
	entra.Audiences = []string{entraAud}
	entra.AuthorizedParties = []string{"web-client"}
	entra.AuthorizedPartyClaims = []string{"azp", "appid"}
	g := base(google)
	g.Aliases = []string{"accounts.google.com"}
	g.Audiences = []string{"orders.example.com"}
	cog := base(cognito)
	cog.Audiences = []string{"5abc7defg"}
	cog.AudienceClaims = []string{"aud", "client_id"}
	v, err := NewVerifier(Options{Issuers: []IssuerConfig{entra, g, cog}, MaxBytes: 8192, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	anyTenant := entra
	anyTenant.Tenants, anyTenant.AnyTenant = nil, true
	vAny, err := NewVerifier(Options{Issuers: []IssuerConfig{anyTenant}, MaxBytes: 8192, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	claims := func(c map[string]any) map[string]any {
		c["sub"], c["exp"] = "user-1", f.now.Add(time.Minute).Unix()
		for k, x := range c {
			if x == nil {
				delete(c, k)
			}
		}
		return c
	}
	tok := func(c map[string]any) string {
		return sign(t, rsHeader("rsa-1"), claims(c), "RS256", f.rsaKey)
	}
	entraV2 := func(extra map[string]any) string {
		c := map[string]any{"iss": "https://login.microsoftonline.com/" + tenant + "/v2.0", "tid": tenant, "aud": entraAud, "azp": "web-client"}
		for k, x := range extra {
			c[k] = x
		}
		return tok(c)
	}

	cases := []struct {
		name       string
		v          *Verifier
		token      string
		want       reason.Code // "" = accepted
		detail     string      // the exact Detail of a refusal
		issuer     string      // the Identity's Issuer when accepted
		wantTenant string
	}{
		{name: "template: listed tenant, tid equal", token: entraV2(nil), issuer: "https://login.microsoftonline.com/" + tenant + "/v2.0", wantTenant: tenant},
		{name: "template alias (Entra v1) with appid as authorized party", token: tok(map[string]any{"iss": "https://sts.windows.net/" + tenant + "/", "tid": tenant, "aud": entraAud, "appid": "web-client"}), issuer: "https://sts.windows.net/" + tenant + "/", wantTenant: tenant},
		{name: "template: azp wins over appid", token: entraV2(map[string]any{"appid": "evil"}), issuer: "https://login.microsoftonline.com/" + tenant + "/v2.0", wantTenant: tenant},
		{name: "template: azp present but not allowed, appid not read", token: entraV2(map[string]any{"azp": "evil", "appid": "web-client"}), want: reason.InvalidToken, detail: `azp "evil" is not an authorized party (["web-client"])`},
		{name: "template: no authorized party claim", token: entraV2(map[string]any{"azp": nil}), want: reason.InvalidToken, detail: `azp "" is not an authorized party (["web-client"])`},
		{name: "template: tenant not listed", token: entraV2(map[string]any{"iss": "https://login.microsoftonline.com/" + other + "/v2.0", "tid": other}), want: reason.UnknownIssuer, detail: `tenant "` + other + `" is not among the tenants of issuer ` + tmplV2},
		{name: "template: cross-tenant token claiming a listed tenant's iss", token: entraV2(map[string]any{"tid": other}), want: reason.InvalidToken, detail: `tid "` + other + `" differs from the tenant "` + tenant + `" in iss`},
		{name: "template: no tid", token: entraV2(map[string]any{"tid": nil}), want: reason.InvalidToken, detail: "the tid claim is missing or not a string; a token of the template issuer " + tmplV2 + " must carry its tenant in tid"},
		{name: "template: tenant spanning segments is no match", token: entraV2(map[string]any{"iss": "https://login.microsoftonline.com/" + tenant + "/x/v2.0"}), want: reason.UnknownIssuer},
		{name: "template: empty tenant is no match", token: entraV2(map[string]any{"iss": "https://login.microsoftonline.com//v2.0"}), want: reason.UnknownIssuer},
		{name: "template: the template spelled literally is no match", token: entraV2(map[string]any{"iss": tmplV2, "tid": "{tenantid}"}), want: reason.UnknownIssuer},
		{name: "template: another audience", token: entraV2(map[string]any{"aud": "api://billing"}), want: reason.WrongAudience, detail: `aud is ["api://billing"]; expected one of ["api://orders"]`},
		{name: "insecure_any_tenant: any tenant, tid still checked", v: vAny, token: entraV2(map[string]any{"iss": "https://login.microsoftonline.com/" + other + "/v2.0", "tid": other}), issuer: "https://login.microsoftonline.com/" + other + "/v2.0", wantTenant: other},
		{name: "insecure_any_tenant: cross-tenant refused", v: vAny, token: entraV2(map[string]any{"tid": other}), want: reason.InvalidToken, detail: `tid "` + other + `" differs from the tenant "` + tenant + `" in iss`},

		{name: "Google issuer", token: tok(map[string]any{"iss": google, "aud": "orders.example.com"}), issuer: google},
		{name: "Google alias without scheme", token: tok(map[string]any{"iss": "accounts.google.com", "aud": "orders.example.com"}), issuer: "accounts.google.com"},
		{name: "alias is exact, not a prefix", token: tok(map[string]any{"iss": "accounts.google.com/", "aud": "orders.example.com"}), want: reason.UnknownIssuer},

		{name: "Cognito access token: client_id as audience", token: tok(map[string]any{"iss": cognito, "client_id": "5abc7defg", "token_use": "access"}), issuer: cognito},
		{name: "Cognito: aud wins over client_id", token: tok(map[string]any{"iss": cognito, "aud": "other", "client_id": "5abc7defg"}), want: reason.WrongAudience, detail: `aud is ["other"]; expected one of ["5abc7defg"]`},
		{name: "Cognito: another client", token: tok(map[string]any{"iss": cognito, "client_id": "other", "token_use": "access"}), want: reason.WrongAudience, detail: `client_id is ["other"]; expected one of ["5abc7defg"]`},
		{name: "Cognito: no audience claim", token: tok(map[string]any{"iss": cognito, "token_use": "access"}), want: reason.WrongAudience, detail: `none of the audience claims (aud, client_id) is present; expected one of ["5abc7defg"]`},
		{name: "Cognito: client_id not a string", token: tok(map[string]any{"iss": cognito, "client_id": 7}), want: reason.InvalidToken, detail: "the client_id claim is neither a string nor an array of strings"},
		{name: "Cognito ID token (aud is the client id)", token: tok(map[string]any{"iss": cognito, "aud": "5abc7defg", "token_use": "id"}), want: reason.InvalidToken, detail: `token type "id" (token_use claim) is not accepted as an access token`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vv := v
			if c.v != nil {
				vv = c.v
			}
			id, err := vv.Verify(context.Background(), c.token)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if id.Issuer != c.issuer || id.Tenant != c.wantTenant || id.Subject != "user-1" {
					t.Errorf("identity issuer %q tenant %q sub %q, want %q %q user-1", id.Issuer, id.Tenant, id.Subject, c.issuer, c.wantTenant)
				}
				if !vv.Fresh(id) {
					t.Error("a just-verified identity is not fresh")
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want %s", c.want)
			}
			if got := refusal(t, err); got != c.want {
				t.Errorf("reason = %s (%v), want %s", got, err, c.want)
			}
			var te *Error
			if c.detail != "" && (!errors.As(err, &te) || te.Detail != c.detail) {
				t.Errorf("detail of %v\nwant %q", err, c.detail)
			}
		})
	}
}

// TestFreshTenant: a cached identity of a template is fresh only while its tenant is accepted
// by the verifier asking (a reload that drops a tenant ends its cached identities).
func TestFreshTenant(t *testing.T) {
	f := newFixture(t)
	const tenant = "t1"
	mk := func(tenants ...string) *Verifier {
		v, err := NewVerifier(Options{Issuers: []IssuerConfig{{Issuer: "https://login.example.com/{tenantid}/v2.0", Tenants: tenants, Keys: f.keysA, Algorithms: []string{"RS256"}}}, MaxBytes: 8192, Now: func() time.Time { return f.now }})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tok := sign(t, rsHeader("rsa-1"), map[string]any{"iss": "https://login.example.com/t1/v2.0", "tid": tenant, "sub": "u", "exp": f.now.Add(time.Minute).Unix()}, "RS256", f.rsaKey)
	id, err := mk(tenant).Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if !mk(tenant).Fresh(id) {
		t.Error("not fresh with its tenant listed")
	}
	if mk("t2").Fresh(id) {
		t.Error("fresh although its tenant is no longer listed")
	}
	forged := *id
	forged.Tenant = ""
	if mk(tenant).Fresh(&forged) {
		t.Error("fresh with a tenant that is not the one of its iss")
	}
}

func TestNewVerifierAliasTemplateMismatch(t *testing.T) {
	f := newFixture(t)
	_, err := NewVerifier(Options{Issuers: []IssuerConfig{{Issuer: "https://login.example.com/{tenantid}/v2.0", Aliases: []string{"https://sts.example.com/fixed/"}, AnyTenant: true, Keys: f.keysA, Algorithms: []string{"RS256"}}}})
	if err == nil || err.Error() != "token: issuer https://login.example.com/{tenantid}/v2.0: alias https://sts.example.com/fixed/ is not a template like its issuer" {
		t.Errorf("err = %v", err)
	}
}
