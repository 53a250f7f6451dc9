// Package devidp is a tiny development identity provider: it generates signing keys at start,
// serves OIDC discovery and a JWKS, and mints access tokens. `portcullis dev` runs it on
// loopback, and tests use it behind httptest. It is never for production.
package devidp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// IdP holds the signing keys and serves discovery and JWKS.
type IdP struct {
	mu     sync.RWMutex
	issuer string
	keys   map[jwa.SignatureAlgorithm]jwk.Key // private keys by algorithm
	public jwk.Set
}

// New generates an RSA-2048 (RS256) and an EC P-256 (ES256) signing key.
func New() (*IdP, error) { return NewFor(jwa.RS256, jwa.ES256) }

// NewFor generates one signing key for each of algs, of the kind the algorithm needs: RSA-2048
// for RS256, RS384, RS512, PS256, PS384 and PS512, EC on the matching curve for ES256 (P-256),
// ES384 (P-384) and ES512 (P-521), Ed25519 for EdDSA. Each key is published for its
// algorithm only.
func NewFor(algs ...jwa.SignatureAlgorithm) (*IdP, error) {
	idp := &IdP{keys: map[jwa.SignatureAlgorithm]jwk.Key{}, public: jwk.NewSet()}
	for _, alg := range algs {
		if _, done := idp.keys[alg]; done {
			continue
		}
		raw, err := generate(alg)
		if err != nil {
			return nil, err
		}
		if err := idp.addKey(alg, raw); err != nil {
			return nil, err
		}
	}
	return idp, nil
}

// generate makes a private key of the kind alg signs with.
func generate(alg jwa.SignatureAlgorithm) (any, error) {
	var (
		key any
		err error
	)
	switch alg {
	case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case jwa.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jwa.ES384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jwa.ES512:
		key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case jwa.EdDSA:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("devidp: no key kind for algorithm %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("devidp: %w", err)
	}
	return key, nil
}

// addKey makes raw (a private key) the signing key for alg and publishes its public half; the
// key id is derived from its RFC 7638 thumbprint.
func (p *IdP) addKey(alg jwa.SignatureAlgorithm, raw any) error {
	priv, err := jwk.FromRaw(raw)
	if err != nil {
		return fmt.Errorf("devidp: %w", err)
	}
	tp, err := priv.Thumbprint(cryptoSHA256)
	if err != nil {
		return fmt.Errorf("devidp: %w", err)
	}
	kid := fmt.Sprintf("%s-%x", strings.ToLower(string(alg)), tp[:8])
	_ = priv.Set(jwk.KeyIDKey, kid)
	_ = priv.Set(jwk.AlgorithmKey, alg)
	pub, err := priv.PublicKey()
	if err != nil {
		return fmt.Errorf("devidp: %w", err)
	}
	_ = pub.Set(jwk.KeyUsageKey, "sig")
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys[alg] = priv
	return p.public.AddKey(pub)
}

// SetIssuer sets the issuer URL (known once the server listens).
func (p *IdP) SetIssuer(issuer string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.issuer = strings.TrimSuffix(issuer, "/")
}

// Issuer returns the issuer URL.
func (p *IdP) Issuer() string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.issuer
}

// JWKS returns the public key set as JSON.
func (p *IdP) JWKS() []byte {
	p.mu.RLock()
	defer p.mu.RUnlock()
	b, _ := json.Marshal(p.public)
	return b
}

// ServeHTTP serves /.well-known/openid-configuration and /jwks under the issuer's path.
func (p *IdP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	issuer := p.Issuer()
	switch {
	case strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration"):
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                issuer,
			"jwks_uri":                              issuer + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		})
	case strings.HasSuffix(r.URL.Path, "/jwks"):
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(p.JWKS())
	default:
		http.NotFound(w, r)
	}
}

// Claims are the claims of a minted token; iss, iat and exp are filled in when absent.
type Claims map[string]any

// Mint signs claims with the key for alg, valid for ttl from now (a negative ttl mints an
// expired token). The header carries typ "JWT" and the key id.
func (p *IdP) Mint(alg jwa.SignatureAlgorithm, claims Claims, ttl time.Duration) (string, error) {
	return p.MintAt(alg, claims, time.Now(), ttl)
}

// MintAt is Mint with an explicit issue time.
func (p *IdP) MintAt(alg jwa.SignatureAlgorithm, claims Claims, now time.Time, ttl time.Duration) (string, error) {
	p.mu.RLock()
	key, ok := p.keys[alg]
	issuer := p.issuer
	p.mu.RUnlock()
	if !ok {
		return "", fmt.Errorf("devidp: no signing key for %s", alg)
	}
	c := Claims{"iss": issuer, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("devidp: %w", err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, "JWT")
	_ = hdr.Set(jws.KeyIDKey, key.KeyID())
	signed, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("devidp: %w", err)
	}
	return string(signed), nil
}

const cryptoSHA256 = crypto.SHA256
