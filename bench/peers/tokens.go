package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/portcullis-authz/portcullis/internal/devidp"
)

const (
	issuer   = "https://sso.example.com/realms/bench"
	audience = "orders-api"
	role     = "user"
)

// claims are those of a Keycloak-shaped access token for user n with roles.
func claims(n int, roles ...string) devidp.Claims {
	return devidp.Claims{"sub": fmt.Sprintf("bench-user-%d", n), "aud": audience, "typ": "Bearer", "azp": "bench-client",
		"preferred_username": "bench", "email": "bench@example.com", "email_verified": true,
		"scope": "openid profile email", "realm_access": map[string]any{"roles": roles}}
}

// probe is a request that a verifying target must answer as want.
type probe struct {
	name  string
	token string
	want  outcome
}

// probes are the good token and the refusals that prove a target verifies: the signature
// (tampered payload, a foreign key under the published key id), the algorithm (none, HS256
// keyed with the public key), the time, the audience, and the role.
func probes(idp *devidp.IdP) ([]probe, error) {
	good, err := idp.Mint(jwa.RS256, claims(0, role), time.Hour)
	if err != nil {
		return nil, err
	}
	noRole, err := idp.Mint(jwa.RS256, claims(0, "guest"), time.Hour)
	if err != nil {
		return nil, err
	}
	expired, err := idp.MintAt(jwa.RS256, claims(0, role), time.Now().Add(-3*time.Hour), time.Hour)
	if err != nil {
		return nil, err
	}
	wrongAud := claims(0, role)
	wrongAud["aud"] = "another-api"
	otherAud, err := idp.Mint(jwa.RS256, wrongAud, time.Hour)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(good, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, err
	}
	c["sub"] = "someone-else"
	tamperedPayload, _ := json.Marshal(c)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(tamperedPayload) + "." + parts[2]

	pub, kid, err := publishedKey(idp.JWKS())
	if err != nil {
		return nil, err
	}
	foreignKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	foreign, err := sign(jwa.RS256, foreignKey, kid, payload)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	hs256, err := sign(jwa.HS256, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), kid, payload)
	if err != nil {
		return nil, err
	}
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	return []probe{
		{"good token", good, allowed},
		{"tampered payload", tampered, refused},
		{"foreign key, published kid", foreign, refused},
		{"alg none", none, refused},
		{"HS256 keyed with the public key", hs256, refused},
		{"expired", expired, refused},
		{"wrong audience", otherAud, refused},
		{"missing role", noRole, refused},
		{"no token", "", refused},
	}, nil
}

// publishedKey is the RSA public key of a JWKS holding one, and its key id.
func publishedKey(jwks []byte) (*rsa.PublicKey, string, error) {
	set, err := jwk.Parse(jwks)
	if err != nil {
		return nil, "", err
	}
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		var pub rsa.PublicKey
		if k.KeyType() == "RSA" && k.Raw(&pub) == nil {
			return &pub, k.KeyID(), nil
		}
	}
	return nil, "", fmt.Errorf("the key set has no RSA key")
}

// sign makes a compact JWS of payload with key, typ JWT and kid in the protected header.
func sign(alg jwa.SignatureAlgorithm, key any, kid string, payload []byte) (string, error) {
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, "JWT")
	_ = hdr.Set(jws.KeyIDKey, kid)
	b, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	return string(b), err
}

// pool mints n distinct valid tokens (distinct subjects), for the uncached slices.
func pool(idp *devidp.IdP, n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		t, err := idp.Mint(jwa.RS256, claims(i+1, role), 24*time.Hour)
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}
