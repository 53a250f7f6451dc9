package token

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/portcullis-authz/portcullis/internal/rsakey"
	"github.com/portcullis-authz/portcullis/jwks"
)

// The cost of verifying an RS256 token, whole and in parts: what BENCHMARKS.md's uncached figures
// are made of. BenchmarkRSAVerifyAlone is the floor the RSA check sets: with the key prepared
// as a key set prepares it (impl=rsakey, what Verify does), and with crypto/rsa, which
// prepares the key again on every call.

func benchToken(b *testing.B) (*fixture, *Verifier, string) {
	f := newFixture(b)
	v := f.verifier(b, nil)
	tok := sign(b, rsHeader("rsa-1"), f.claims(map[string]any{
		"preferred_username": "alice", "email": "alice@example.com", "azp": "web", "sid": "3f1c2d7e-1b8a-4a55-9a8e-0d6c1f1f2a3b",
		"jti": "onrtac:0b6e1c1a-8c36-4c8f-9d0e-2f3b7a1c5d9e", "session_state": "3f1c2d7e-1b8a-4a55-9a8e-0d6c1f1f2a3b",
		"allowed-origins": []string{"https://shop.example.com"}, "email_verified": true, "name": "Alice Example",
	}), "RS256", f.rsaKey)
	return f, v, tok
}

// BenchmarkVerifyRS256: parse, claims, key lookup, signature and claim checks of a
// Keycloak-shaped RS256-2048 token.
func BenchmarkVerifyRS256(b *testing.B) {
	_, v, tok := benchToken(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRSAVerifyAlone: the PKCS #1 v1.5 check of the same signature, nothing else.
func BenchmarkRSAVerifyAlone(b *testing.B) {
	f, _, tok := benchToken(b)
	dot := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte(tok[:dot]))
	prepared, err := rsakey.New(&f.rsaKey.PublicKey)
	if err != nil {
		b.Fatal(err)
	}
	for _, impl := range []struct {
		name   string
		verify func() error
	}{
		{"rsakey", func() error { return prepared.VerifyPKCS1v15(crypto.SHA256, digest[:], sig) }},
		{"crypto-rsa", func() error { return rsa.VerifyPKCS1v15(&f.rsaKey.PublicKey, crypto.SHA256, digest[:], sig) }},
	} {
		b.Run("impl="+impl.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := impl.verify(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClaimsDecode: what verify does with the same token's claims: the strict scan and
// index of the payload, the registered claims, the roles and scopes (Keycloak's two roles
// claims), and two kept claims decoded for the Identity.
func BenchmarkClaimsDecode(b *testing.B) {
	_, _, tok := benchToken(b)
	parts := strings.Split(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		b.Fatal(err)
	}
	roles := claimPaths(b, "realm_access.roles", "resource_access")
	b.ReportMetric(float64(len(raw)), "bytes")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var buf [topMembers]member
		p, err := scanPayload(raw, &buf)
		if err != nil {
			b.Fatal(err)
		}
		cl := claims{p: p}
		if err := cl.readRegistered(); err != nil {
			b.Fatal(err)
		}
		if len(rolesFromPayload(&cl.p, roles)) != 3 || len(scopesFromPayload(&cl.p)) != 2 {
			b.Fatal("roles or scopes missing")
		}
		for _, name := range [...]string{"preferred_username", "email"} {
			if raw, ok := cl.p.get(name); !ok || decodeAny(raw) == nil {
				b.Fatal(name)
			}
		}
	}
}

// BenchmarkClaimsDecodeJSON: the strict scan and encoding/json's decoding of the whole payload
// into a map, which verify did before the payload was read as written.
func BenchmarkClaimsDecodeJSON(b *testing.B) {
	_, _, tok := benchToken(b)
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(payload)), "bytes")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := checkJSONObject(payload); err != nil {
			b.Fatal(err)
		}
		var all map[string]any
		if err := json.Unmarshal(payload, &all); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyPS256: the same token as BenchmarkVerifyRS256, signed with RSASSA-PSS (salt
// as long as the hash, RFC 7518 §3.5).
func BenchmarkVerifyPS256(b *testing.B) {
	f, _, tok := benchToken(b)
	dot := strings.IndexByte(tok, '.')
	payload := tok[dot+1 : strings.LastIndexByte(tok, '.')]
	keys := &fakeKeys{keys: []jwks.Key{keyOf(b, "ps-1", jwa.PS256, &f.rsaKey.PublicKey)}}
	v := f.verifier(b, func(c *IssuerConfig) {
		c.Keys = keys
		c.Algorithms = []string{"PS256"}
	})
	hdr := enc(map[string]any{"alg": "PS256", "typ": "JWT", "kid": "ps-1"})
	digest := sha256.Sum256([]byte(hdr + "." + payload))
	sig, err := rsa.SignPSS(rand.Reader, f.rsaKey, crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	if err != nil {
		b.Fatal(err)
	}
	tok = hdr + "." + payload + "." + base64.RawURLEncoding.EncodeToString(sig)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClaimPathLookup: a rule's claim requirements and identity headers looking claims up
// in a Keycloak-shaped payload: a plain name, a dotted path, an Auth0 namespaced name, a
// Kubernetes path and a miss.
func BenchmarkClaimPathLookup(b *testing.B) {
	claims := lookupClaims()
	paths := claimPaths(b, "sub", "realm_access.roles", "https://example.com/tier", "kubernetes.io.serviceaccount.name", "realm_access.missing")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, p := range paths {
			if _, ok := p.Lookup(claims); !ok && p.String() != "realm_access.missing" {
				b.Fatal(p)
			}
		}
	}
}
