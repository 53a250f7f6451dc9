package authz

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/dpop"
	"github.com/portcullis-authz/portcullis/internal/devidp"
	"github.com/portcullis-authz/portcullis/reason"
	"github.com/portcullis-authz/portcullis/rules"
)

// proofKey is a client's DPoP key.
type proofKey struct {
	priv *ecdsa.PrivateKey
	jwk  map[string]any
	jkt  string
}

func newProofKey(t testing.TB) *proofKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pt, _ := k.PublicKey.Bytes()
	x, y := b64url(pt[1:33]), b64url(pt[33:])
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	return &proofKey{priv: k, jwk: map[string]any{"kty": "EC", "crv": "P-256", "x": x, "y": y}, jkt: b64url(sum[:])}
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// proof signs a proof for method and uri, with the ath of tok, issued at iat.
func (k *proofKey) proof(t testing.TB, method, uri, tok string, iat time.Time) string {
	t.Helper()
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	hb, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": k.jwk})
	cb, _ := json.Marshal(map[string]any{"jti": b64url(jti),
		"htm": method, "htu": uri, "iat": iat.Unix(), "ath": dpop.AccessTokenHash(tok)})
	input := b64url(hb) + "." + b64url(cb)
	d := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k.priv, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64url(append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...))
}

// certPEM is a self-signed client certificate, as PEM, with its x5t#S256.
func certPEM(t testing.TB, cn string) (string, string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), b64url(sum[:])
}

var senderNow = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func senderEngine(t testing.TB, o SenderOptions, forwardToken bool) (*Engine, *devidp.IdP) {
	t.Helper()
	v, idp := benchVerifier(t)
	set, err := rules.Compile([]rules.Spec{
		{Name: "strict", Match: rules.MatchSpec{Paths: []string{"/strict/**"}}, Require: rules.RequireSpec{SenderConstrained: true}},
		{Name: "open", Match: rules.MatchSpec{Paths: []string{"/open/**"}}, Public: true},
		{Name: "api", Match: rules.MatchSpec{Paths: []string{"/api/**"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return NewEngine(Options{Rules: set, Verifier: v, Sources: []config.TokenSource{{Header: "authorization", Prefix: "Bearer "}},
		IdentityHeaders: attributes(t, map[string]string{"x-user-id": "sub"}), ForwardToken: forwardToken, CacheSize: 100,
		Now: func() time.Time { return senderNow }, Sender: o}), idp
}

const (
	wwwDPoPInvalidToken = `DPoP error="invalid_token", error_description="the access token is invalid", algs="RS256 ES256", Bearer realm="portcullis"`
	wwwInvalidProof     = `DPoP error="invalid_dpop_proof", error_description="the DPoP proof is invalid", algs="RS256 ES256", Bearer realm="portcullis"`
)

func www(d *Decision) string {
	for _, h := range d.Answer {
		if h.Name == "www-authenticate" {
			return h.Value
		}
	}
	return ""
}

// TestDPoP: a DPoP-bound token through the engine, with the exact answers.
func TestDPoP(t *testing.T) {
	e, idp2 := senderEngine(t, SenderOptions{}, true)
	key, other := newProofKey(t), newProofKey(t)
	bound := keycloakLikeClaims(t, idp2, jwa.RS256, map[string]any{"cnf": map[string]any{"jkt": key.jkt}})
	unbound := keycloakLike(t, idp2, jwa.RS256)
	const uri = "https://api.example.com/api/orders/42"
	req := func(scheme, tok, proof, path string) *Request {
		h := map[string]string{"authorization": scheme + " " + tok}
		if proof != "" {
			h["dpop"] = proof
		}
		return &Request{Method: "GET", Host: "api.example.com", Scheme: "https", Path: path, Headers: h}
	}
	replayed := key.proof(t, "GET", uri, bound, senderNow)
	cases := []struct {
		name   string
		r      *Request
		status int
		reason reason.Code
		www    string
		detail string
	}{
		{"fresh proof", req("DPoP", bound, key.proof(t, "GET", uri, bound, senderNow), "/api/orders/42?x=1"), 200, reason.OK, "", ""},
		{"fresh proof, token now cached", req("dpop", bound, key.proof(t, "GET", uri, bound, senderNow), "/api/orders/42"), 200, reason.OK, "", ""},
		{"first use of a proof", req("DPoP", bound, replayed, "/api/orders/42"), 200, reason.OK, "", ""},
		{"replayed proof", req("DPoP", bound, replayed, "/api/orders/42"), 401, reason.InvalidDPoPProof, wwwInvalidProof, "jti was seen before: the proof is replayed"},
		{"proof for another URL", req("DPoP", bound, key.proof(t, "GET", "https://api.example.com/api/orders/43", bound, senderNow), "/api/orders/42"), 401, reason.InvalidDPoPProof, wwwInvalidProof,
			`htu is "https://api.example.com/api/orders/43"; the request's URI is "https://api.example.com/api/orders/42"`},
		{"proof for another method", req("DPoP", bound, key.proof(t, "POST", uri, bound, senderNow), "/api/orders/42"), 401, reason.InvalidDPoPProof, wwwInvalidProof, `htm is "POST"; the request's method is GET`},
		{"proof by another key", req("DPoP", bound, other.proof(t, "GET", uri, bound, senderNow), "/api/orders/42"), 401, reason.InvalidDPoPProof, wwwInvalidProof,
			"the proof's key (thumbprint " + other.jkt + ") is not the key the token is bound to (cnf.jkt " + key.jkt + ")"},
		{"no proof", req("DPoP", bound, "", "/api/orders/42"), 401, reason.InvalidDPoPProof, wwwInvalidProof, "no DPoP header; a DPoP-bound token needs a proof on every request"},
		{"bound token as Bearer", req("Bearer", bound, "", "/api/orders/42"), 401, reason.InvalidToken, wwwDPoPInvalidToken,
			"the token is bound to a DPoP key (cnf.jkt) but came as a Bearer token; send it as Authorization: DPoP with a DPoP proof (RFC 9449 §7.2)"},
		{"bound token as Bearer with a valid proof", req("Bearer", bound, key.proof(t, "GET", uri, bound, senderNow), "/api/orders/42"), 401, reason.InvalidToken, wwwDPoPInvalidToken,
			"the token is bound to a DPoP key (cnf.jkt) but came as a Bearer token; send it as Authorization: DPoP with a DPoP proof (RFC 9449 §7.2)"},
		{"unbound token with the DPoP scheme", req("DPoP", unbound, key.proof(t, "GET", uri, unbound, senderNow), "/api/orders/42"), 401, reason.InvalidToken, wwwDPoPInvalidToken,
			"the token came with the DPoP scheme but is not bound to a DPoP key (no cnf.jkt)"},
		{"invalid token with the DPoP scheme", req("DPoP", "not-a-jwt", "", "/api/orders/42"), 401, reason.InvalidToken, wwwDPoPInvalidToken,
			"not a JWT: expected three dot-separated parts"},
		{"unbound Bearer token on a normal rule", req("Bearer", unbound, "", "/api/orders/42"), 200, reason.OK, "", ""},
		{"unbound Bearer token on a sender_constrained rule", req("Bearer", unbound, "", "/strict/x"), 401, reason.InvalidToken, wwwDPoPInvalidToken,
			"the rule takes sender-constrained tokens only (require.sender_constrained) and this token is bound to no key or certificate (no cnf)"},
		{"DPoP on a sender_constrained rule", req("DPoP", bound, key.proof(t, "GET", "https://api.example.com/strict/x", bound, senderNow), "/strict/x"), 200, reason.OK, "", ""},
		{"no token on a sender_constrained rule", &Request{Method: "GET", Host: "api.example.com", Scheme: "https", Path: "/strict/x", Headers: map[string]string{}}, 401, reason.NoToken,
			`Bearer realm="portcullis", DPoP algs="RS256 ES256"`, "no token in header authorization"},
		{"no token on a normal rule: Bearer alone", &Request{Method: "GET", Host: "api.example.com", Scheme: "https", Path: "/api/x", Headers: map[string]string{}}, 401, reason.NoToken,
			`Bearer realm="portcullis"`, "no token in header authorization"},
		{"public rule, bad proof: anonymous", req("DPoP", bound, "", "/open/x"), 200, reason.Public, "",
			"anonymous: invalid_dpop_proof: no DPoP header; a DPoP-bound token needs a proof on every request"},
		{"no scheme known", &Request{Method: "GET", Host: "api.example.com", Path: "/api/orders/42", Headers: map[string]string{"authorization": "DPoP " + bound,
			"dpop": key.proof(t, "GET", uri, bound, senderNow)}}, 401, reason.InvalidDPoPProof, wwwInvalidProof,
			"the request's scheme is unknown, so htu cannot be checked (the forward-auth proxy must send X-Forwarded-Proto)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := e.Decide(context.Background(), c.r)
			if d.Status != c.status || d.Reason != c.reason || www(d) != c.www || d.Detail != c.detail {
				t.Errorf("got %d %s www %q detail %q\nwant %d %s www %q detail %q", d.Status, d.Reason, www(d), d.Detail, c.status, c.reason, c.www, c.detail)
			}
			if d.Allow && slices.Contains(d.UpstreamRemove, "dpop") {
				t.Errorf("forward_token: true, yet the DPoP header is removed upstream: %v", d.UpstreamRemove)
			}
		})
	}
}

// TestDPoPForwardedOrigin: with dpop.forwarded_origin, htu's scheme and authority are those of
// X-Forwarded-Proto and X-Forwarded-Host; without it, those headers are ignored.
func TestDPoPForwardedOrigin(t *testing.T) {
	key := newProofKey(t)
	for _, forwarded := range []bool{true, false} {
		e, idp := senderEngine(t, SenderOptions{ForwardedOrigin: forwarded}, false)
		bound := keycloakLikeClaims(t, idp, jwa.RS256, map[string]any{"cnf": map[string]any{"jkt": key.jkt}})
		r := &Request{Method: "GET", Host: "orders.internal:8080", Scheme: "http", Path: "/api/orders", Headers: map[string]string{
			"authorization": "DPoP " + bound, "x-forwarded-proto": "https", "x-forwarded-host": "api.example.com, proxy.internal",
			"dpop": key.proof(t, "GET", "https://api.example.com/api/orders", bound, senderNow)}}
		d := e.Decide(context.Background(), r)
		if forwarded && (!d.Allow || !slices.Contains(d.UpstreamRemove, "dpop")) {
			t.Errorf("forwarded_origin: %d %s %s; upstream remove %v (forward_token: false removes the proof too)", d.Status, d.Reason, d.Detail, d.UpstreamRemove)
		}
		want := `htu is "https://api.example.com/api/orders"; the request's URI is "http://orders.internal:8080/api/orders"`
		if !forwarded && (d.Reason != reason.InvalidDPoPProof || d.Detail != want) {
			t.Errorf("without forwarded_origin: %d %s %q, want invalid_dpop_proof %q", d.Status, d.Reason, d.Detail, want)
		}
	}
}

// TestCertificateBound: a token with cnf.x5t#S256 against the client certificate Envoy
// passes, or the trusted header when one is configured (which is then removed upstream).
func TestCertificateBound(t *testing.T) {
	right, x5t := certPEM(t, "client")
	wrong, wrongX5T := certPEM(t, "other")
	sum := sha256.Sum256(mustDER(t, right))
	cases := []struct {
		name, header string // header: mtls.client_cert_header
		cert         string // Request.ClientCert (URL-encoded PEM)
		headers      map[string]string
		reason       reason.Code
		detail       string
	}{
		{"peer certificate", "", url.QueryEscape(right), nil, reason.OK, ""},
		{"another peer certificate", "", url.QueryEscape(wrong), nil, reason.InvalidToken,
			"the client certificate (x5t#S256 " + wrongX5T + ") is not the one the token is bound to (cnf.x5t#S256 " + x5t + ")"},
		{"no peer certificate", "", "", nil, reason.InvalidToken,
			"the token is bound to a client certificate (cnf.x5t#S256), and the connection presented no client certificate (Envoy: include_peer_certificate: true on the ext_authz filter, and a listener that requests client certificates)"},
		{"peer certificate not PEM", "", "garbage", nil, reason.InvalidToken, "the token is bound to a client certificate (cnf.x5t#S256), and the client certificate is not a PEM certificate"},
		{"xfcc Cert", config.ClientCertXFCC, url.QueryEscape(wrong), map[string]string{"x-forwarded-client-cert": `By=spiffe://a;Hash=00;Cert="` + url.QueryEscape(right) + `";Subject="CN=client,O=a;b"`}, reason.OK, ""},
		{"xfcc of several elements", config.ClientCertXFCC, url.QueryEscape(wrong), map[string]string{"x-forwarded-client-cert": `By=spiffe://a;Hash=00;Cert="` + url.QueryEscape(right) + `";Subject="CN=client,O=a;b",By=spiffe://b;Cert="` + url.QueryEscape(wrong) + `"`}, reason.InvalidToken,
			"the token is bound to a client certificate (cnf.x5t#S256), and the x-forwarded-client-cert header has several elements, and Portcullis trusts only one: configure the proxy that terminates TLS with forward_client_cert_details: SANITIZE_SET"},
		{"xfcc Hash", config.ClientCertXFCC, "", map[string]string{"x-forwarded-client-cert": "Hash=" + hex.EncodeToString(sum[:]) + ";Subject=\"CN=client\""}, reason.OK, ""},
		{"xfcc of another certificate", config.ClientCertXFCC, url.QueryEscape(right), map[string]string{"x-forwarded-client-cert": `Cert="` + url.QueryEscape(wrong) + `"`}, reason.InvalidToken,
			"the client certificate (x5t#S256 " + wrongX5T + ") is not the one the token is bound to (cnf.x5t#S256 " + x5t + ")"},
		{"xfcc configured, absent", config.ClientCertXFCC, url.QueryEscape(right), nil, reason.InvalidToken,
			"the token is bound to a client certificate (cnf.x5t#S256), and the request has no x-forwarded-client-cert header"},
		{"RFC 9440 Client-Cert", config.ClientCertRFC9440, "", map[string]string{"client-cert": ":" + base64.StdEncoding.EncodeToString(mustDER(t, right)) + ":"}, reason.OK, ""},
		{"RFC 9440 Client-Cert malformed", config.ClientCertRFC9440, "", map[string]string{"client-cert": base64.StdEncoding.EncodeToString(mustDER(t, right))}, reason.InvalidToken,
			"the token is bound to a client certificate (cnf.x5t#S256), and the client-cert header is not an RFC 9440 byte sequence (:base64:)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, idp := senderEngine(t, SenderOptions{ClientCertHeader: c.header}, true)
			tok := keycloakLikeClaims(t, idp, jwa.RS256, map[string]any{"cnf": map[string]any{"x5t#S256": x5t}})
			h := map[string]string{"authorization": "Bearer " + tok}
			for k, x := range c.headers {
				h[k] = x
			}
			d := e.Decide(context.Background(), &Request{Method: "GET", Host: "api.example.com", Scheme: "https", Path: "/strict/x", Headers: h, ClientCert: c.cert})
			if d.Reason != c.reason || d.Detail != c.detail {
				t.Fatalf("got %d %s %q, want %s %q", d.Status, d.Reason, d.Detail, c.reason, c.detail)
			}
			if d.Reason == reason.InvalidToken && (d.Status != 401 || www(d) != wwwDPoPInvalidToken) {
				t.Errorf("deny %d www %q, want 401 %q", d.Status, www(d), wwwDPoPInvalidToken)
			}
			if d.Allow && c.header != "" && !slices.Contains(d.UpstreamRemove, c.header) {
				t.Errorf("the trusted header %s is not removed upstream: %v", c.header, d.UpstreamRemove)
			}
		})
	}
}

func mustDER(t testing.TB, p string) []byte {
	t.Helper()
	b, _ := pem.Decode([]byte(p))
	return b.Bytes
}
