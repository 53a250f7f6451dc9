package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/portcullis-authz/portcullis/jwks"
	"github.com/portcullis-authz/portcullis/reason"
)

// fakeKeys is a KeySet holding fixed keys; it can be emptied (never loaded) or have keys removed.
type fakeKeys struct {
	mu        sync.Mutex
	keys      []jwks.Key
	notLoaded bool
	lookups   int
}

func (f *fakeKeys) Lookup(_ context.Context, kid string, alg jwa.SignatureAlgorithm) ([]jwks.Key, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if f.notLoaded {
		return nil, jwks.ErrNotLoaded
	}
	var out []jwks.Key
	for _, k := range f.keys {
		if (kid == "" || k.KID == kid) && jwks.KeyFits(k.JWK, alg) {
			out = append(out, k)
		}
	}
	if kid != "" && len(out) == 0 {
		return nil, fmt.Errorf("kid %q: %w", kid, jwks.ErrUnknownKey)
	}
	return out, nil
}

func (f *fakeKeys) Contains(thumbprint string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range f.keys {
		if k.Thumbprint == thumbprint {
			return true
		}
	}
	return false
}

func (f *fakeKeys) remove(kid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kept := f.keys[:0]
	for _, k := range f.keys {
		if k.KID != kid {
			kept = append(kept, k)
		}
	}
	f.keys = kept
}

func keyOf(t testing.TB, kid string, alg jwa.SignatureAlgorithm, pub any) jwks.Key {
	t.Helper()
	k, err := jwk.FromRaw(pub)
	if err != nil {
		t.Fatal(err)
	}
	_ = k.Set(jwk.KeyIDKey, kid)
	_ = k.Set(jwk.AlgorithmKey, alg)
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwks.NewKey(kid, base64.RawURLEncoding.EncodeToString(tp), pub, k)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// fixture holds the keys and clock of the verification tables.
type fixture struct {
	rsaKey   *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
	attacker *rsa.PrivateKey
	keysA    *fakeKeys
	keysB    *fakeKeys
	now      time.Time
}

const (
	issA = "https://sso.example.com/realms/demo"
	issB = "https://other.example.com"
)

var fixtureOnce = sync.OnceValue(func() *fixture {
	f := &fixture{now: time.Unix(1_800_000_000, 0)}
	f.rsaKey, _ = rsa.GenerateKey(rand.Reader, 2048)
	f.ecKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.attacker, _ = rsa.GenerateKey(rand.Reader, 2048)
	return f
})

func newFixture(t testing.TB) *fixture {
	base := fixtureOnce()
	f := *base
	f.keysA = &fakeKeys{keys: []jwks.Key{keyOf(t, "rsa-1", jwa.RS256, &f.rsaKey.PublicKey), keyOf(t, "ec-1", jwa.ES256, &f.ecKey.PublicKey)}}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.keysB = &fakeKeys{keys: []jwks.Key{keyOf(t, "b-only", jwa.ES256, &other.PublicKey)}}
	return &f
}

func (f *fixture) verifier(t testing.TB, mutate func(*IssuerConfig)) *Verifier {
	t.Helper()
	a := IssuerConfig{
		Issuer: issA, Keys: f.keysA, Audiences: []string{"orders-api"}, Algorithms: []string{"RS256", "ES256"},
		Leeway: 30 * time.Second, RolesClaims: claimPaths(t, "realm_access.roles", "resource_access"), TokenTypes: []string{"Bearer", "at+jwt"},
	}
	if mutate != nil {
		mutate(&a)
	}
	b := IssuerConfig{Issuer: issB, Keys: f.keysB, Algorithms: []string{"ES256", "RS256"}, Leeway: time.Second, TokenTypes: []string{"Bearer"}}
	v, err := NewVerifier(Options{Issuers: []IssuerConfig{a, b}, MaxBytes: 4096, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func enc(v any) string {
	var b []byte
	switch v := v.(type) {
	case string:
		b = []byte(v)
	default:
		b, _ = json.Marshal(v)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// sign builds a compact JWS from a raw header and payload (strings are used verbatim, anything
// else is JSON-encoded) with the given algorithm and key.
func sign(t testing.TB, hdr, payload any, alg string, key any) string {
	t.Helper()
	input := enc(hdr) + "." + enc(payload)
	var sig []byte
	var err error
	switch alg {
	case "RS256":
		h := sha256.Sum256([]byte(input))
		sig, err = rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, h[:])
	case "ES256":
		h := sha256.Sum256([]byte(input))
		r, s, e := ecdsa.Sign(rand.Reader, key.(*ecdsa.PrivateKey), h[:])
		err = e
		sig = append(pad32(r), pad32(s)...)
	case "HS256":
		m := hmac.New(sha256.New, key.([]byte))
		m.Write([]byte(input))
		sig = m.Sum(nil)
	default:
		t.Fatalf("sign: %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func pad32(n *big.Int) []byte {
	b := n.Bytes()
	return append(make([]byte, 32-len(b)), b...)
}

func (f *fixture) claims(extra map[string]any) map[string]any {
	c := map[string]any{
		"iss": issA, "sub": "user-1", "aud": "orders-api", "typ": "Bearer",
		"exp": f.now.Add(5 * time.Minute).Unix(), "iat": f.now.Unix(),
		"realm_access":    map[string]any{"roles": []string{"user"}},
		"resource_access": map[string]any{"orders-api": map[string]any{"roles": []string{"writer"}}, "account": map[string]any{"roles": []string{"view-profile"}}},
		"scope":           "openid orders:write",
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func rsHeader(kid string) map[string]any {
	return map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid}
}

func TestVerify(t *testing.T) {
	f := newFixture(t)
	rs := func(extra map[string]any) string {
		return sign(t, rsHeader("rsa-1"), f.claims(extra), "RS256", f.rsaKey)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&f.rsaKey.PublicKey)
	good := rs(nil)
	parts := strings.Split(good, ".")

	cases := []struct {
		name   string
		token  string
		mutate func(*IssuerConfig)
		want   reason.Code // "" = accepted
		detail string      // when set, the exact Detail of the refusal
	}{
		{name: "RS256 accepted", token: good},
		{name: "ES256 accepted", token: sign(t, map[string]any{"alg": "ES256", "kid": "ec-1"}, f.claims(nil), "ES256", f.ecKey)},
		{name: "no kid: keys fitting the alg are tried", token: sign(t, map[string]any{"alg": "RS256"}, f.claims(nil), "RS256", f.rsaKey)},
		{name: "aud array containing the audience", token: rs(map[string]any{"aud": []string{"account", "orders-api"}})},
		{name: "header typ at+jwt (RFC 9068)", token: sign(t, map[string]any{"alg": "RS256", "kid": "rsa-1", "typ": "at+jwt"}, f.claims(map[string]any{"typ": nil}), "RS256", f.rsaKey)},
		{name: "header typ application/at+jwt", token: sign(t, map[string]any{"alg": "RS256", "kid": "rsa-1", "typ": "application/at+jwt"}, f.claims(map[string]any{"typ": nil}), "RS256", f.rsaKey)},
		{name: "expired within leeway", token: rs(map[string]any{"exp": f.now.Add(-20 * time.Second).Unix()})},
		{name: "audience not checked when none configured", token: rs(map[string]any{"aud": "x"}), mutate: func(c *IssuerConfig) { c.Audiences = nil }},
		{name: "azp allowed", token: rs(map[string]any{"azp": "web"}), mutate: func(c *IssuerConfig) { c.AuthorizedParties = []string{"web"} }},

		{name: "expired", token: rs(map[string]any{"exp": f.now.Add(-31 * time.Second).Unix()}), want: reason.Expired},
		{name: "exp missing", token: rs(map[string]any{"exp": nil}), want: reason.InvalidToken},
		{name: "exp not a number", token: rs(map[string]any{"exp": "tomorrow"}), want: reason.InvalidToken},
		// numericDate's bound is 1e11 s (year 5138): the largest value passes, the next one is
		// refused as a NumericDate, though it decodes as a JSON number without trouble.
		{name: "exp at the NumericDate bound", token: rs(map[string]any{"exp": 1e11})},
		{name: "exp beyond the NumericDate bound", token: rs(map[string]any{"exp": 1e11 + 1}), want: reason.InvalidToken, detail: "the exp claim is not a valid NumericDate"},
		{name: "nbf beyond the NumericDate bound", token: rs(map[string]any{"nbf": 1e12}), want: reason.InvalidToken, detail: "the nbf claim is not a valid NumericDate"},
		{name: "exp negative", token: rs(map[string]any{"exp": -1}), want: reason.InvalidToken, detail: "the exp claim is not a valid NumericDate"},
		// 1e400 overflows float64, so it is encoding/json that refuses it, before any bound.
		{name: "exp overflowing float64 (JSON decoding fails)", token: sign(t, rsHeader("rsa-1"), `{"iss":"`+issA+`","aud":"orders-api","exp":1e400}`, "RS256", f.rsaKey), want: reason.InvalidToken, detail: "claims are not valid JSON"},
		{name: "nbf in the future", token: rs(map[string]any{"nbf": f.now.Add(time.Minute).Unix()}), want: reason.InvalidToken},
		{name: "iat in the future", token: rs(map[string]any{"iat": f.now.Add(time.Hour).Unix()}), want: reason.InvalidToken},
		{name: "wrong audience", token: rs(map[string]any{"aud": "account"}), want: reason.WrongAudience},
		{name: "no audience", token: rs(map[string]any{"aud": nil}), want: reason.WrongAudience},
		{name: "aud of the wrong type", token: rs(map[string]any{"aud": 7}), want: reason.InvalidToken},
		{name: "azp not allowed", token: rs(map[string]any{"azp": "evil"}), mutate: func(c *IssuerConfig) { c.AuthorizedParties = []string{"web"} }, want: reason.InvalidToken},
		{name: "Keycloak ID token", token: rs(map[string]any{"typ": "ID"}), want: reason.InvalidToken},
		{name: "Keycloak refresh token", token: rs(map[string]any{"typ": "Refresh"}), want: reason.InvalidToken},
		{name: "header typ of an ID token", token: sign(t, map[string]any{"alg": "RS256", "kid": "rsa-1", "typ": "id+jwt"}, f.claims(nil), "RS256", f.rsaKey), want: reason.InvalidToken},
		{name: "issuer with a trailing slash", token: rs(map[string]any{"iss": issA + "/"}), want: reason.UnknownIssuer},
		{name: "issuer missing", token: rs(map[string]any{"iss": nil}), want: reason.InvalidToken},
		{name: "unknown kid", token: sign(t, rsHeader("rsa-9"), f.claims(nil), "RS256", f.rsaKey), want: reason.UnknownKey},
		{name: "kid of another issuer", token: sign(t, map[string]any{"alg": "ES256", "kid": "b-only"}, f.claims(nil), "ES256", f.ecKey), want: reason.UnknownKey},
		{name: "kid as a path", token: sign(t, rsHeader("../../etc/passwd"), f.claims(nil), "RS256", f.rsaKey), want: reason.UnknownKey},
		{name: "bad signature", token: parts[0] + "." + parts[1] + "." + enc(strings.Repeat("x", 256)), want: reason.BadSignature},
		{name: "payload swapped under a valid signature", token: parts[0] + "." + enc(f.claims(map[string]any{"sub": "admin"})) + "." + parts[2], want: reason.BadSignature},
		{name: "signed by a key the token carries (jwk header ignored)", token: sign(t, map[string]any{"alg": "RS256", "kid": "rsa-1", "jwk": map[string]any{"kty": "RSA"}, "jku": "https://evil.example.com/jwks"}, f.claims(nil), "RS256", f.attacker), want: reason.BadSignature},
		{name: "alg none", token: enc(`{"alg":"none"}`) + "." + enc(f.claims(nil)) + ".", want: reason.InvalidToken},
		{name: "alg NoNe with a signature", token: sign(t, map[string]any{"alg": "NoNe", "kid": "rsa-1"}, f.claims(nil), "RS256", f.rsaKey), want: reason.InvalidToken},
		{name: "alg HS256 with the RSA public key as secret (key confusion)", token: sign(t, map[string]any{"alg": "HS256", "kid": "rsa-1"}, f.claims(nil), "HS256", pubDER), want: reason.InvalidToken},
		{name: "alg allowed elsewhere but not for this issuer", token: sign(t, rsHeader("rsa-1"), f.claims(nil), "RS256", f.rsaKey), mutate: func(c *IssuerConfig) { c.Algorithms = []string{"ES256"} }, want: reason.InvalidToken},
		{name: "ES256 header on an RSA kid", token: sign(t, map[string]any{"alg": "ES256", "kid": "rsa-1"}, f.claims(nil), "ES256", f.ecKey), want: reason.UnknownKey},
		{name: "unknown crit header", token: sign(t, map[string]any{"alg": "RS256", "kid": "rsa-1", "crit": []string{"exp"}, "exp": 1}, f.claims(nil), "RS256", f.rsaKey), want: reason.InvalidToken},
		{name: "b64 false", token: sign(t, map[string]any{"alg": "RS256", "kid": "rsa-1", "b64": false}, f.claims(nil), "RS256", f.rsaKey), want: reason.InvalidToken},
		{name: "JWE (five parts)", token: "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", want: reason.InvalidToken},
		{name: "JWS JSON serialisation", token: `{"payload":"x","signatures":[]}`, want: reason.InvalidToken},
		{name: "two parts", token: parts[0] + "." + parts[1], want: reason.InvalidToken},
		{name: "empty signature (unsigned)", token: parts[0] + "." + parts[1] + ".", want: reason.InvalidToken},
		{name: "padded base64", token: parts[0] + "." + parts[1] + "." + parts[2] + "==", want: reason.InvalidToken},
		{name: "standard base64 alphabet", token: parts[0] + "." + parts[1] + "+/." + parts[2], want: reason.InvalidToken},
		{name: "payload not an object", token: sign(t, rsHeader("rsa-1"), `["iss"]`, "RS256", f.rsaKey), want: reason.InvalidToken},
		{name: "header not an object", token: sign(t, `"RS256"`, f.claims(nil), "RS256", f.rsaKey), want: reason.InvalidToken},
		{name: "duplicate claim", token: sign(t, rsHeader("rsa-1"), `{"iss":"`+issA+`","sub":"a","sub":"admin","aud":"orders-api","exp":1900000000}`, "RS256", f.rsaKey), want: reason.InvalidToken},
		{name: "duplicate header member (escaped spelling)", token: sign(t, `{"alg":"RS256","\u0061lg":"none","kid":"rsa-1"}`, f.claims(nil), "RS256", f.rsaKey), want: reason.InvalidToken},
		{name: "deep nesting", token: sign(t, rsHeader("rsa-1"), `{"iss":"`+issA+`","x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)+`}`, "RS256", f.rsaKey), want: reason.InvalidToken},
		{name: "trailing data after the claims", token: sign(t, rsHeader("rsa-1"), `{"iss":"`+issA+`"} {}`, "RS256", f.rsaKey), want: reason.InvalidToken},
		{name: "too large", token: rs(map[string]any{"pad": strings.Repeat("a", 5000)}), want: reason.InvalidToken},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := f.verifier(t, c.mutate)
			id, err := v.Verify(context.Background(), c.token)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if id.Subject != "user-1" || id.Issuer != issA {
					t.Errorf("identity = %+v", id)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want %s", c.want)
			}
			if got := refusal(t, err); got != c.want {
				t.Errorf("reason = %s (%v), want %s", got, err, c.want)
			}
			if c.detail != "" {
				var te *Error
				if !errors.As(err, &te) || te.Detail != c.detail {
					t.Errorf("detail of %v, want %q", err, c.detail)
				}
			}
			if strings.Contains(err.Error(), c.token) && len(c.token) > 20 {
				t.Error("the error echoes the token")
			}
		})
	}
}

// refusal returns the reason a refusal carries, failing the test unless err is a *Error whose
// reason is a token refusal of the reason table (what ReasonOf would otherwise hide).
func refusal(t testing.TB, err error) reason.Code {
	t.Helper()
	var te *Error
	if !errors.As(err, &te) {
		t.Fatalf("refusal %v (%T) is not a *token.Error", err, err)
	}
	if a, ok := reason.Of(te.Reason); !ok || !a.TokenRefusal {
		t.Fatalf("refusal %v carries %q, which is not a token refusal of the reason table", err, te.Reason)
	}
	if got := ReasonOf(err); got != te.Reason {
		t.Fatalf("ReasonOf = %s, want the carried %s", got, te.Reason)
	}
	return te.Reason
}

// TestReasonOf: a foreign error, and a *Error whose reason is not a token refusal (a
// programming mistake), both come out as invalid_token, so the engine still answers 401.
func TestReasonOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want reason.Code
	}{
		{errors.New("boom"), reason.InvalidToken},
		{&Error{Reason: reason.Expired}, reason.Expired},
		{fmt.Errorf("wrapped: %w", &Error{Reason: reason.UnknownKey}), reason.UnknownKey},
		{&Error{Reason: reason.OK}, reason.InvalidToken},
		{&Error{Reason: reason.Forbidden}, reason.InvalidToken},
		{&Error{Reason: ""}, reason.InvalidToken},
		{&Error{Reason: "teapot"}, reason.InvalidToken},
	} {
		if got := ReasonOf(c.err); got != c.want {
			t.Errorf("ReasonOf(%#v) = %s, want %s", c.err, got, c.want)
		}
	}
}

func TestVerifyNeverLoaded(t *testing.T) {
	f := newFixture(t)
	f.keysA.notLoaded = true
	_, err := f.verifier(t, nil).Verify(context.Background(), sign(t, rsHeader("rsa-1"), f.claims(nil), "RS256", f.rsaKey))
	if refusal(t, err) != reason.Unavailable || !errors.Is(err, jwks.ErrNotLoaded) {
		t.Errorf("err = %v", err)
	}
}

func TestIdentity(t *testing.T) {
	f := newFixture(t)
	tok := sign(t, rsHeader("rsa-1"), f.claims(map[string]any{"realm_access": map[string]any{"roles": []string{"user", "admin", "user"}}}), "RS256", f.rsaKey)
	id, err := f.verifier(t, nil).Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(id.Roles, ","); got != "account:view-profile,admin,orders-api:writer,user" {
		t.Errorf("roles = %s", got)
	}
	if got := strings.Join(id.Scopes, ","); got != "openid,orders:write" {
		t.Errorf("scopes = %s", got)
	}
	if !id.ExpiresAt.Equal(f.now.Add(5 * time.Minute)) {
		t.Errorf("expires = %v", id.ExpiresAt)
	}
	if id.KeyThumbprint != f.keysA.keys[0].Thumbprint {
		t.Errorf("thumbprint = %s", id.KeyThumbprint)
	}
	scp := sign(t, rsHeader("rsa-1"), f.claims(map[string]any{"scope": nil, "scp": []string{"a", "b"}}), "RS256", f.rsaKey)
	if id, err := f.verifier(t, nil).Verify(context.Background(), scp); err != nil || strings.Join(id.Scopes, ",") != "a,b" {
		t.Errorf("scp: %v %v", id, err)
	}
	for name, value := range map[string]any{"scp": "a b", "scopes": []string{"a", "b"}} {
		tok := sign(t, rsHeader("rsa-1"), f.claims(map[string]any{"scope": nil, name: value}), "RS256", f.rsaKey)
		if id, err := f.verifier(t, nil).Verify(context.Background(), tok); err != nil || strings.Join(id.Scopes, ",") != "a,b" {
			t.Errorf("%s %v: %v %v", name, value, id, err)
		}
	}
}

// TestHints: a refusal says what to change when the token's shape or iss shows the mistake;
// the reason and detail stay those of the refusal.
func TestHints(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, nil)
	rs := func(extra map[string]any) string {
		return sign(t, rsHeader("rsa-1"), f.claims(extra), "RS256", f.rsaKey)
	}
	good := rs(nil)
	// Keycloak's refresh and offline tokens: HS512 with the realm's secret, typ Refresh/Offline.
	hs := func(typ string) string {
		return sign(t, map[string]any{"alg": "HS512", "typ": "JWT", "kid": "5d1f"}, f.claims(map[string]any{"typ": typ, "aud": issA, "azp": "web", "sid": "s1"}), "HS256", []byte("realm-secret"))
	}
	const useAccess = "send the access_token of the token response instead"
	const compared = ", and issuers are compared exactly; configure the issuer as the token spells it, or get tokens from the identity provider at the configured URL (Keycloak writes the URL it was reached at into iss)" +
		`; configured issuers: "https://other.example.com", "https://sso.example.com/realms/demo"`
	near := func(iss, diff string) string {
		return "token iss is " + iss + " but the configured issuer is " + issA + ": they differ only in " + diff + compared
	}
	for _, c := range []struct {
		name, token string
		want        reason.Code
		detail      string
		hint        string
	}{
		{name: "iss with a trailing slash", token: rs(map[string]any{"iss": issA + "/"}), want: reason.UnknownIssuer,
			detail: `issuer "` + issA + `/" is not configured`, hint: near(issA+"/", "the trailing slash")},
		{name: "iss in another letter case", token: rs(map[string]any{"iss": "https://SSO.example.com/realms/Demo"}), want: reason.UnknownIssuer,
			detail: `issuer "https://SSO.example.com/realms/Demo" is not configured`,
			hint:   near("https://SSO.example.com/realms/Demo", "the letter case of the host and the letter case of the path")},
		{name: "iss over http with the port written out", token: rs(map[string]any{"iss": "http://sso.example.com:443/realms/demo"}), want: reason.UnknownIssuer,
			detail: `issuer "http://sso.example.com:443/realms/demo" is not configured`,
			hint:   near("http://sso.example.com:443/realms/demo", "the scheme (http, https) and the port (443 written out in one)")},
		{name: "iss elsewhere", token: rs(map[string]any{"iss": "https://evil.example.com"}), want: reason.UnknownIssuer,
			detail: `issuer "https://evil.example.com" is not configured`,
			hint:   `configured issuers: "https://other.example.com", "https://sso.example.com/realms/demo" (the token's iss must equal one of them exactly)`},
		{name: "scheme pasted in front", token: "Bearer " + good, want: reason.InvalidToken, detail: "header is not base64url",
			hint: `the token begins with the scheme "Bearer": pass the token alone, without it (the Authorization header carries the scheme once, before the token)`},
		{name: "DPoP scheme in lower case", token: "dpop " + good, want: reason.InvalidToken, detail: "header is not base64url",
			hint: `the token begins with the scheme "dpop": pass the token alone, without it (the Authorization header carries the scheme once, before the token)`},
		{name: "a whole Authorization header", token: "Authorization: Bearer " + good, want: reason.InvalidToken, detail: "header is not base64url",
			hint: `the token begins with a whole Authorization header: pass the token alone, without it (the Authorization header carries the scheme once, before the token)`},
		{name: "Keycloak refresh token", token: hs("Refresh"), want: reason.InvalidToken, detail: `algorithm "HS512" is not allowed for this issuer (allowed: RS256 ES256)`,
			hint: `this is a refresh token (typ "Refresh", signed HS512 with the identity provider's own secret): it is for the identity provider's token endpoint, never for APIs; ` + useAccess},
		{name: "Keycloak offline token", token: hs("Offline"), want: reason.InvalidToken, detail: `algorithm "HS512" is not allowed for this issuer (allowed: RS256 ES256)`,
			hint: `this is an offline token, a long-lived refresh token (typ "Offline", signed HS512 with the identity provider's own secret): it is for the identity provider's token endpoint, never for APIs; ` + useAccess},
		{name: "Keycloak ID token", token: rs(map[string]any{"typ": "ID", "aud": "web", "azp": "web"}), want: reason.WrongAudience, detail: `aud is ["web"]; expected one of ["orders-api"]`,
			hint: `this is an OpenID Connect ID token (typ "ID"): it tells the client (aud "web") who signed in and is not meant for APIs; ` + useAccess},
		{name: "ID token with the API's audience", token: rs(map[string]any{"typ": "ID", "at_hash": "x"}), want: reason.InvalidToken, detail: `token type "ID" (typ claim) is not accepted as an access token`,
			hint: `this is an OpenID Connect ID token (typ "ID"): it tells the client (aud "orders-api") who signed in and is not meant for APIs; ` + useAccess},
		{name: "ID token by at_hash", token: rs(map[string]any{"typ": nil, "aud": "abc123", "at_hash": "x"}), want: reason.WrongAudience, detail: `aud is ["abc123"]; expected one of ["orders-api"]`,
			hint: `this may be an OpenID Connect ID token (it carries at_hash): an ID token tells the client (aud "abc123") who signed in and is not meant for APIs; if it is the id_token of the token response, ` + useAccess},
		{name: "ID token by nonce and aud", token: rs(map[string]any{"typ": nil, "aud": "abc123", "azp": "abc123", "nonce": "n"}), want: reason.WrongAudience, detail: `aud is ["abc123"]; expected one of ["orders-api"]`,
			hint: `this may be an OpenID Connect ID token (it carries a nonce and is addressed to its client alone): an ID token tells the client (aud "abc123") who signed in and is not meant for APIs; if it is the id_token of the token response, ` + useAccess},
		{name: "access token with a nonce", token: rs(map[string]any{"aud": "account", "azp": "web", "nonce": "n"}), want: reason.WrongAudience, detail: `aud is ["account"]; expected one of ["orders-api"]`,
			hint: "add an audience mapper for orders-api in Keycloak so its access tokens carry it in aud"},
		{name: "expired access token", token: rs(map[string]any{"exp": f.now.Add(-192 * time.Second).Unix()}), want: reason.Expired, detail: "expired 3m12s ago"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), c.token)
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("err = %v", err)
			}
			if te.Reason != c.want || te.Detail != c.detail || te.Hint != c.hint {
				t.Errorf("got %s %q\nhint %q\nwant %s %q\nhint %q", te.Reason, te.Detail, te.Hint, c.want, c.detail, c.hint)
			}
		})
	}
}

// TestTemplateIssuerHint: a template issuer is listed as configured, and an iss that misses it
// only by spelling is compared with the token's tenant in its place.
func TestTemplateIssuerHint(t *testing.T) {
	f := newFixture(t)
	const tmpl = "https://login.microsoftonline.com/{tenantid}/v2.0"
	v := f.verifier(t, func(c *IssuerConfig) { c.Issuer, c.Tenants = tmpl, []string{"0f1e2d3c"} })
	iss := "https://login.microsoftonline.com/0f1e2d3c/v2.0/"
	_, err := v.Verify(context.Background(), sign(t, rsHeader("rsa-1"), f.claims(map[string]any{"iss": iss, "tid": "0f1e2d3c"}), "RS256", f.rsaKey))
	var te *Error
	want := "token iss is " + iss + " but the configured issuer is " + tmpl + ": they differ only in the trailing slash, and issuers are compared exactly; " +
		"configure the issuer as the token spells it, or get tokens from the identity provider at the configured URL (Keycloak writes the URL it was reached at into iss); " +
		`configured issuers: "https://login.microsoftonline.com/{tenantid}/v2.0", "https://other.example.com"`
	if !errors.As(err, &te) || te.Reason != reason.UnknownIssuer || te.Hint != want {
		t.Errorf("err = %v\nhint %q\nwant %q", err, te.Hint, want)
	}
}

// TestSpellingDifference: how an iss differs from a configured issuer when it names the same
// issuer spelt otherwise; "" when it names another.
func TestSpellingDifference(t *testing.T) {
	for _, c := range []struct{ iss, name, want string }{
		{"http://localhost:8080/realms/demo", "http://127.0.0.1:8080/realms/demo", "the host's spelling (localhost, 127.0.0.1: the same machine, two names)"},
		{"http://[::1]:8080/realms/demo", "http://localhost:8080/realms/demo", "the host's spelling (::1, localhost: the same machine, two names)"},
		{"http://localhost:8180/realms/demo", "http://127.0.0.1:8080/realms/demo/", "the host's spelling (localhost, 127.0.0.1: the same machine, two names), the port (8180, 8080) and the trailing slash"},
		{"https://sso.example.com:8443/realms/demo", "https://sso.example.com/realms/demo", "the port (8443, 443)"},
		{"HTTPS://sso.example.com/realms/demo", "https://sso.example.com/realms/demo", "letter case"},
		{"accounts.google.com", "accounts.google.com/", "the trailing slash"},
		{"Accounts.Google.com", "accounts.google.com", "letter case"},
		{"https://sso.example.com/realms/demo", "https://sso.example.com/realms/demo", ""},
		{"https://sso.example.com/realms/other", "https://sso.example.com/realms/demo", ""},
		{"https://evil.example.com/realms/demo", "https://sso.example.com/realms/demo", ""},
		{"http://10.0.0.1:8080/realms/demo", "http://127.0.0.1:8080/realms/demo", ""},
		{"https://sso.example.com/realms/demo?x=1", "https://sso.example.com/realms/demo", ""},
		// A template is compared with the token's tenant in its place.
		{"https://login.microsoftonline.com/0f1e2d3c/v2.0/", withTenantOf("https://login.microsoftonline.com/0f1e2d3c/v2.0/", "https://login.microsoftonline.com/{tenantid}/v2.0"), "the trailing slash"},
		{"https://login.microsoftonline.com/", withTenantOf("https://login.microsoftonline.com/", "https://login.microsoftonline.com/{tenantid}/v2.0"), ""},
	} {
		if got := spellingDifference(c.iss, c.name); got != c.want {
			t.Errorf("spellingDifference(%q, %q) = %q, want %q", c.iss, c.name, got, c.want)
		}
	}
}

func TestFresh(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, nil)
	id, err := v.Verify(context.Background(), sign(t, rsHeader("rsa-1"), f.claims(map[string]any{"nbf": f.now.Unix()}), "RS256", f.rsaKey))
	if err != nil {
		t.Fatal(err)
	}
	if !v.Fresh(id) {
		t.Error("a just-verified identity is not fresh")
	}
	// Within the leeway after exp: still fresh; beyond it: not.
	v.now = func() time.Time { return f.now.Add(5*time.Minute + 29*time.Second) }
	if !v.Fresh(id) {
		t.Error("stale within the leeway")
	}
	v.now = func() time.Time { return f.now.Add(5*time.Minute + 31*time.Second) }
	if v.Fresh(id) {
		t.Error("fresh after exp + leeway")
	}
	// The clock going back before nbf (beyond the leeway).
	v.now = func() time.Time { return f.now.Add(-time.Minute) }
	if v.Fresh(id) {
		t.Error("fresh before nbf")
	}
	// The signing key leaves the set.
	v.now = func() time.Time { return f.now }
	f.keysA.remove("rsa-1")
	if v.Fresh(id) {
		t.Error("fresh after its key was rotated out")
	}
	if v.Fresh(&Identity{Issuer: "https://unknown.example.com"}) {
		t.Error("fresh for an unknown issuer")
	}
}

func TestKeepClaims(t *testing.T) {
	f := newFixture(t)
	v, err := NewVerifier(Options{Issuers: []IssuerConfig{{Issuer: issA, Keys: f.keysA, Algorithms: []string{"RS256"},
		RolesClaims: claimPaths(t, "realm_access.roles"), TokenTypes: []string{"Bearer"}}}, MaxBytes: 4096,
		Now: func() time.Time { return f.now }, KeepClaims: claimPaths(t, "email", "tenant")})
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(context.Background(), sign(t, rsHeader("rsa-1"), f.claims(map[string]any{"email": "a@example.com"}), "RS256", f.rsaKey))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(id.Claims) != "map[email:a@example.com]" {
		t.Errorf("claims = %v", id.Claims)
	}
	if strings.Join(id.Roles, ",") != "user" || strings.Join(id.Scopes, ",") != "openid,orders:write" {
		t.Errorf("roles and scopes are read before claims are dropped: %v %v", id.Roles, id.Scopes)
	}
}

// signPSS builds a compact JWS signed with RSASSA-PSS (PS256, PS384 or PS512) and the given salt
// length (rsa.PSSSaltLengthAuto = the largest salt the key allows).
func signPSS(t testing.TB, hdr, payload any, alg string, key *rsa.PrivateKey, salt int) string {
	t.Helper()
	hash := map[string]crypto.Hash{"PS256": crypto.SHA256, "PS384": crypto.SHA384, "PS512": crypto.SHA512}[alg]
	input := enc(hdr) + "." + enc(payload)
	h := hash.New()
	h.Write([]byte(input))
	sig, err := rsa.SignPSS(rand.Reader, key, hash, h.Sum(nil), &rsa.PSSOptions{SaltLength: salt, Hash: hash})
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// RFC 7518 §3.5: the salt of PS256, PS384 and PS512 is as long as the hash output. A signature
// with any other salt length, none or the largest the key allows, is refused.
func TestVerifyPSSSaltLength(t *testing.T) {
	f := newFixture(t)
	keys := &fakeKeys{keys: []jwks.Key{
		keyOf(t, "ps256", jwa.PS256, &f.rsaKey.PublicKey),
		keyOf(t, "ps384", jwa.PS384, &f.rsaKey.PublicKey),
		keyOf(t, "ps512", jwa.PS512, &f.rsaKey.PublicKey),
	}}
	v := f.verifier(t, func(c *IssuerConfig) {
		c.Keys = keys
		c.Algorithms = []string{"PS256", "PS384", "PS512"}
	})
	// A 2048-bit key leaves room for a salt of 256-hLen-2 bytes.
	maxSalt := func(hLen int) int { return f.rsaKey.Size() - hLen - 2 }
	cases := []struct {
		alg  string
		salt int
		want reason.Code // "" = accepted
	}{
		{"PS256", 32, ""},
		{"PS256", 0, reason.BadSignature},
		{"PS256", 31, reason.BadSignature},
		{"PS256", 33, reason.BadSignature},
		{"PS256", maxSalt(32), reason.BadSignature},
		{"PS384", 48, ""},
		{"PS384", 0, reason.BadSignature},
		{"PS384", 32, reason.BadSignature},
		{"PS384", maxSalt(48), reason.BadSignature},
		{"PS512", 64, ""},
		{"PS512", 0, reason.BadSignature},
		{"PS512", 32, reason.BadSignature},
		{"PS512", maxSalt(64), reason.BadSignature},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s salt %d", c.alg, c.salt), func(t *testing.T) {
			kid := strings.ToLower(c.alg)
			tok := signPSS(t, map[string]any{"alg": c.alg, "kid": kid, "typ": "JWT"}, f.claims(nil), c.alg, f.rsaKey, c.salt)
			id, err := v.Verify(context.Background(), tok)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if id.Subject != "user-1" || id.KeyThumbprint != keys.keys[0].Thumbprint {
					t.Errorf("identity = %+v", id)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want %s", c.want)
			}
			want := "bad_signature: signature does not verify with the " + c.alg + " key of " + issA
			if refusal(t, err) != c.want || err.Error() != want {
				t.Errorf("err = %v\nwant %s", err, want)
			}
		})
	}
}

// An Ed25519 "public key" of small order verifies signatures nobody made: with the identity
// point as key, R = identity and S = 0 verify for every message. Such a key published in a key
// set (here through a JWKS file, the path that converts nothing at run time) is skipped at load,
// so a token naming it is refused; a token signed by the good key beside it is accepted.
func TestVerifyNeverUsesASmallOrderEd25519Key(t *testing.T) {
	f := newFixture(t)
	goodPub, goodPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	identity := append([]byte{1}, make([]byte, 31)...)
	forged := append(append([]byte{}, identity...), make([]byte, 32)...)
	if !ed25519.Verify(identity, []byte("any message"), forged) {
		t.Fatal("crypto/ed25519 no longer accepts the identity key: this test shows nothing")
	}
	doc, _ := json.Marshal(map[string]any{"keys": []map[string]any{
		{"kty": "OKP", "crv": "Ed25519", "kid": "forged", "alg": "EdDSA", "x": base64.RawURLEncoding.EncodeToString(identity)},
		{"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "alg": "EdDSA", "x": base64.RawURLEncoding.EncodeToString(goodPub)},
	}})
	set, err := jwks.ParseSet(doc, KeyAlgorithms(SupportedAlgorithms()))
	if err != nil {
		t.Fatal(err)
	}
	cache, err := jwks.New(jwks.Options{Issuer: issA, StaticSet: set, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	v := f.verifier(t, func(c *IssuerConfig) {
		c.Keys = cache
		c.Algorithms = []string{"EdDSA"}
	})
	input := func(kid string) string {
		hdr := map[string]any{"alg": "EdDSA", "typ": "JWT"}
		if kid != "" {
			hdr["kid"] = kid
		}
		return enc(hdr) + "." + enc(f.claims(map[string]any{"sub": "admin"}))
	}
	cases := []struct {
		name, token string
		want        string // "" = accepted
	}{
		{"signed by the good key", input("ed-1") + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(goodPriv, []byte(input("ed-1")))), ""},
		{"forged for the small-order kid", input("forged") + "." + base64.RawURLEncoding.EncodeToString(forged),
			`unknown_key: kid "forged" is not in the key set of ` + issA},
		{"forged without a kid", input("") + "." + base64.RawURLEncoding.EncodeToString(forged),
			"bad_signature: signature does not verify with the EdDSA key of " + issA},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := v.Verify(context.Background(), c.token)
			if c.want == "" {
				if err != nil || id.Subject != "admin" {
					t.Fatalf("Verify = %+v, %v", id, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted a forged token (sub %q)", id.Subject)
			}
			if err.Error() != c.want {
				t.Errorf("err = %v\nwant %s", err, c.want)
			}
		})
	}
}

// TestSupportedAlgorithmsFitKeys: token owns the list of algorithms, jwks the rule of which
// key fits which algorithm (KeyFits); every algorithm of the list has a kind of key that fits
// it, so no allowed algorithm can silently match nothing.
func TestSupportedAlgorithmsFitKeys(t *testing.T) {
	f := newFixture(t)
	var pubs []any
	pubs = append(pubs, &f.rsaKey.PublicKey)
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, &k.PublicKey)
	}
	ed, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubs = append(pubs, ed)
	for _, alg := range KeyAlgorithms(SupportedAlgorithms()) {
		fits := 0
		for _, pub := range pubs {
			k, err := jwk.FromRaw(pub)
			if err != nil {
				t.Fatal(err)
			}
			if jwks.KeyFits(k, alg) {
				fits++
			}
		}
		if fits != 1 {
			t.Errorf("%s: %d of the RSA, P-256, P-384, P-521 and Ed25519 keys fit it, want 1", alg, fits)
		}
	}
}
