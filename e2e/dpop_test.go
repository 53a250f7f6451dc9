//go:build e2e

package e2e

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// dpopClient is the Keycloak client TestDPoPKeycloak creates through the admin REST API: public,
// with the password grant, the orders-api audience, and "Require DPoP bound tokens" on.
const dpopClient = "portcullis-dpop"

// dpopKey is a client's DPoP key pair and its RFC 7638 thumbprint. RSA (RS256): a proof's alg
// must be among its token issuer's algorithms, and envoy/portcullis.yaml allows RS256 only.
type dpopKey struct {
	priv *rsa.PrivateKey
	jwk  map[string]string
	jkt  string
}

func newDPoPKey(t *testing.T) *dpopKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	n, e := enc(k.N.Bytes()), enc(big.NewInt(int64(k.E)).Bytes())
	sum := sha256.Sum256([]byte(`{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`))
	return &dpopKey{priv: k, jwk: map[string]string{"kty": "RSA", "n": n, "e": e}, jkt: enc(sum[:])}
}

// proof is a DPoP proof (RFC 9449 §4.2) for method and uri; accessToken "" leaves ath out (the
// token request).
func (k *dpopKey) proof(t *testing.T, method, uri, accessToken string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	claims := map[string]any{"jti": randomHex(16), "htm": method, "htu": uri, "iat": time.Now().Unix()}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		claims["ath"] = enc(sum[:])
	}
	h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "RS256", "jwk": k.jwk})
	c, _ := json.Marshal(claims)
	input := enc(h) + "." + enc(c)
	d := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.priv, crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc(sig)
}

// createDPoPClient adds dpopClient to the demo realm with the admin REST API.
func (kc *keycloak) createDPoPClient(t *testing.T) {
	t.Helper()
	client := map[string]any{
		"clientId": dpopClient, "enabled": true, "protocol": "openid-connect", "publicClient": true,
		"directAccessGrantsEnabled": true, "standardFlowEnabled": false, "fullScopeAllowed": true,
		"attributes": map[string]string{"dpop.bound.access.tokens": "true"},
		"protocolMappers": []map[string]any{{
			"name": "audience orders-api", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
			"config": map[string]string{"included.client.audience": "orders-api", "access.token.claim": "true"},
		}},
	}
	body, _ := json.Marshal(client)
	req, _ := http.NewRequest(http.MethodPost, kc.base+"/admin/realms/"+realm+"/clients", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+kc.adminToken(t))
	req.Header.Set("Content-Type", "application/json")
	resp, err := kcClient.Do(req)
	if err != nil {
		t.Fatalf("create client: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusConflict {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("create client: %d %s", resp.StatusCode, b)
	}
}

// dpopToken runs the password grant for alice through dpopClient with the DPoP header proof
// ("" = none), and returns the answer's status, token_type and access token.
func (kc *keycloak) dpopToken(t *testing.T, proof string) (int, string, string) {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "client_id": {dpopClient}, "username": {"alice"}, "password": {"alice-pw"}}
	req, _ := http.NewRequest(http.MethodPost, kc.tokenURL(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := kcClient.Do(req)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Access string `json:"access_token"`
		Type   string `json:"token_type"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.Type, out.Access
}

func (kc *keycloak) tokenURL() string {
	return kc.base + "/realms/" + realm + "/protocol/openid-connect/token"
}

// TestDPoPKeycloak: Keycloak issues a DPoP-bound token (cnf.jkt) to a client configured for
// them, for a token request with a DPoP proof; through Envoy, Portcullis allows it with a fresh
// proof and refuses it as a Bearer token, with a replayed proof and with a proof for another
// URL.
func TestDPoPKeycloak(t *testing.T) {
	env.kc.createDPoPClient(t)
	key := newDPoPKey(t)

	if status, _, _ := env.kc.dpopToken(t, ""); status != http.StatusBadRequest {
		t.Fatalf("token request without a proof: %d, want 400 (the client requires DPoP-bound tokens)", status)
	}
	status, typ, tok := env.kc.dpopToken(t, key.proof(t, http.MethodPost, env.kc.tokenURL(), ""))
	if status != http.StatusOK || !strings.EqualFold(typ, "DPoP") {
		t.Fatalf("token request with a proof: %d token_type %q, want 200 DPoP", status, typ)
	}
	cnf, _ := claims(t, tok)["cnf"].(map[string]any)
	if cnf["jkt"] != key.jkt {
		t.Fatalf("cnf = %v, want jkt %s (the proof key's thumbprint)", cnf, key.jkt)
	}

	const path = "/api/orders/1"
	uri := env.envoyURL + path // http://127.0.0.1:PORT: Envoy sends scheme http and that :authority
	const (
		invalidProof = `DPoP error="invalid_dpop_proof", error_description="the DPoP proof is invalid", algs="RS256", Bearer realm="portcullis"`
		invalidToken = `DPoP error="invalid_token", error_description="the access token is invalid", algs="RS256", Bearer realm="portcullis"`
		proofSeries  = `portcullis_decisions_total{decision="deny",front="grpc",reason="invalid_dpop_proof"}`
	)
	withProof := func(p string) map[string]string { return map[string]string{"Authorization": "DPoP " + tok, "DPoP": p} }
	beforeProof := metric(t, proofSeries)

	fresh := key.proof(t, http.MethodGet, uri, tok)
	t.Run("fresh proof allowed", func(t *testing.T) {
		r := call(t, http.MethodGet, path+"?page=2", "", withProof(fresh))
		if r.status != http.StatusOK || !r.reached {
			t.Fatalf("got %s, want 200 from the upstream", r)
		}
		if got := r.one(t, "x-user-name"); got != "alice" {
			t.Errorf("x-user-name = %q, want alice", got)
		}
		if got := r.one(t, "dpop"); got != fresh {
			t.Errorf("the upstream did not get the proof (forward_token: true forwards it with the token)")
		}
	})
	t.Run("another fresh proof allowed (token cached)", func(t *testing.T) {
		r := call(t, http.MethodGet, path, "", withProof(key.proof(t, http.MethodGet, uri, tok)))
		if r.status != http.StatusOK || !r.reached {
			t.Fatalf("got %s, want 200 from the upstream", r)
		}
	})
	deny := func(t *testing.T, r reply, wantErr, wantWWW string) {
		t.Helper()
		doc := expectDeny(t, r, http.StatusUnauthorized, tok)
		if doc["error"] != wantErr {
			t.Errorf("error = %q, want %q", doc["error"], wantErr)
		}
		if got := r.header.Get("Www-Authenticate"); got != wantWWW {
			t.Errorf("www-authenticate = %q, want %q", got, wantWWW)
		}
	}
	t.Run("same token as Bearer refused", func(t *testing.T) {
		deny(t, call(t, http.MethodGet, path, tok, nil), "invalid_token", invalidToken)
	})
	t.Run("same token as Bearer with a proof refused", func(t *testing.T) {
		deny(t, call(t, http.MethodGet, path, tok, map[string]string{"DPoP": key.proof(t, http.MethodGet, uri, tok)}), "invalid_token", invalidToken)
	})
	t.Run("replayed proof refused", func(t *testing.T) {
		deny(t, call(t, http.MethodGet, path, "", withProof(fresh)), "invalid_dpop_proof", invalidProof)
	})
	t.Run("proof for another URL refused", func(t *testing.T) {
		deny(t, call(t, http.MethodGet, path, "", withProof(key.proof(t, http.MethodGet, env.envoyURL+"/api/orders/2", tok))), "invalid_dpop_proof", invalidProof)
	})
	t.Run("proof by another key refused", func(t *testing.T) {
		deny(t, call(t, http.MethodGet, path, "", withProof(newDPoPKey(t).proof(t, http.MethodGet, uri, tok))), "invalid_dpop_proof", invalidProof)
	})
	if got := metric(t, proofSeries); got != beforeProof+3 {
		t.Errorf("%s = %v, want %v", proofSeries, got, beforeProof+3)
	}
}
