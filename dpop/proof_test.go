package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"
)

var (
	t0       = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	theToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln" // any string: only its hash is read
	theURI   = "https://api.example.com/orders/1"
	allAlgs  = []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"}
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signer holds a proof key.
type signer struct {
	alg  string
	priv crypto.Signer
	jwk  map[string]any // public members
}

func ecSigner(t testing.TB) *signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pt, _ := k.PublicKey.Bytes() // uncompressed point: 0x04 || x || y
	return &signer{alg: "ES256", priv: k, jwk: map[string]any{"kty": "EC", "crv": "P-256", "x": b64(pt[1:33]), "y": b64(pt[33:])}}
}

func edSigner(t testing.TB, seed byte) *signer {
	t.Helper()
	k := ed25519.NewKeyFromSeed(bytes32(seed))
	return &signer{alg: "EdDSA", priv: k, jwk: map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(k.Public().(ed25519.PublicKey))}}
}

func rsaSigner(t testing.TB) *signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{alg: "RS256", priv: k, jwk: map[string]any{"kty": "RSA", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}}
}

func bytes32(b byte) []byte {
	s := make([]byte, 32)
	for i := range s {
		s[i] = b
	}
	return s
}

// thumbprint computes RFC 7638 §3 independently of the code under test: the required members
// in lexicographic order, no whitespace, SHA-256, base64url.
func (s *signer) thumbprint() string {
	var canon string
	switch s.jwk["kty"] {
	case "EC":
		canon = `{"crv":"` + s.jwk["crv"].(string) + `","kty":"EC","x":"` + s.jwk["x"].(string) + `","y":"` + s.jwk["y"].(string) + `"}`
	case "OKP":
		canon = `{"crv":"Ed25519","kty":"OKP","x":"` + s.jwk["x"].(string) + `"}`
	case "RSA":
		canon = `{"e":"` + s.jwk["e"].(string) + `","kty":"RSA","n":"` + s.jwk["n"].(string) + `"}`
	}
	sum := sha256.Sum256([]byte(canon))
	return b64(sum[:])
}

// sign builds a proof with header h and claims c (JSON objects as maps), signed by s.
func (s *signer) sign(t testing.TB, h, c map[string]any) string {
	t.Helper()
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(c)
	input := b64(hb) + "." + b64(cb)
	var sig []byte
	var err error
	switch s.alg {
	case "ES256":
		d := sha256.Sum256([]byte(input))
		var r, ss *big.Int
		r, ss, err = ecdsa.Sign(rand.Reader, s.priv.(*ecdsa.PrivateKey), d[:])
		sig = append(r.FillBytes(make([]byte, 32)), ss.FillBytes(make([]byte, 32))...)
	case "EdDSA":
		sig = ed25519.Sign(s.priv.(ed25519.PrivateKey), []byte(input))
	case "RS256":
		d := sha256.Sum256([]byte(input))
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.priv.(*rsa.PrivateKey), crypto.SHA256, d[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(sig)
}

func (s *signer) header() map[string]any {
	return map[string]any{"typ": "dpop+jwt", "alg": s.alg, "jwk": s.jwk}
}

func goodClaims(jti string) map[string]any {
	return map[string]any{"jti": jti, "htm": "POST", "htu": theURI, "iat": t0.Unix(), "ath": AccessTokenHash(theToken)}
}

func request(proof, jkt string) *Request {
	return &Request{Proof: proof, Method: "POST", URI: theURI + "?page=2", AccessToken: theToken, JKT: jkt,
		Algorithms: allAlgs, Leeway: 30 * time.Second}
}

func checker(now time.Time) *Checker {
	return NewChecker(Options{MaxAge: 60 * time.Second, Now: func() time.Time { return now }})
}

// TestCheck: a valid proof passes, and each check refuses alone, with its exact detail.
func TestCheck(t *testing.T) {
	ec := ecSigner(t)
	other := ecSigner(t)
	with := func(k string, v any) func(h, c map[string]any) {
		return func(_, c map[string]any) {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
	}
	header := func(k string, v any) func(h, c map[string]any) {
		return func(h, _ map[string]any) {
			if v == nil {
				delete(h, k)
			} else {
				h[k] = v
			}
		}
	}
	privJWK := map[string]any{}
	for k, v := range ec.jwk {
		privJWK[k] = v
	}
	privJWK["d"] = b64(ec.priv.(*ecdsa.PrivateKey).D.FillBytes(make([]byte, 32)))
	cases := []struct {
		name   string
		edit   func(h, c map[string]any)
		req    func(r *Request)
		signer *signer
		now    time.Time
		want   string // "" = accepted
	}{
		{name: "valid", want: ""},
		{name: "valid, iat at the earliest edge", now: t0.Add(90 * time.Second)},
		{name: "valid, iat at the latest edge", now: t0.Add(-30 * time.Second)},
		{name: "valid, htu spelled differently", edit: with("htu", "HTTPS://API.example.com:443/orders/%31")},
		{name: "valid, Ed25519", signer: edSigner(t, 7)},
		{name: "valid, RSA", signer: rsaSigner(t)},
		{name: "typ missing", edit: header("typ", nil), want: `typ is ""; a proof's typ is dpop+jwt`},
		{name: "typ JWT", edit: header("typ", "JWT"), want: `typ is "JWT"; a proof's typ is dpop+jwt`},
		{name: "alg not allowed for the issuer", req: func(r *Request) { r.Algorithms = []string{"RS256"} }, want: `alg "ES256" is not allowed (allowed: RS256)`},
		{name: "alg HS256", edit: header("alg", "HS256"), req: func(r *Request) { r.Algorithms = append(r.Algorithms, "HS256") }, want: `alg "HS256" is not allowed (allowed: RS256 PS256 ES256 ES384 EdDSA HS256)`},
		{name: "alg none", edit: header("alg", "none"), want: `alg "none" is not allowed (allowed: RS256 PS256 ES256 ES384 EdDSA)`},
		{name: "jwk missing", edit: header("jwk", nil), want: "the header has no jwk"},
		{name: "jwk not an object", edit: header("jwk", "k"), want: "jwk is not a JSON object"},
		{name: "jwk private", edit: header("jwk", privJWK), want: `jwk holds the private member "d"; a proof carries the public key only`},
		{name: "jwk of another type than alg", edit: header("alg", "RS256"), want: "jwk is not a public key for RS256: EC P-256 key fits none of the allowed algorithms"},
		{name: "signature by another key", edit: header("jwk", other.jwk), want: "the signature does not verify with the proof's jwk"},
		{name: "htm other method", edit: with("htm", "GET"), want: `htm is "GET"; the request's method is POST`},
		{name: "htm lower case", edit: with("htm", "post"), want: `htm is "post"; the request's method is POST`},
		{name: "htu other path", edit: with("htu", "https://api.example.com/orders/2"), want: `htu is "https://api.example.com/orders/2"; the request's URI is "https://api.example.com/orders/1"`},
		{name: "htu other host", edit: with("htu", "https://evil.example.com/orders/1"), want: `htu is "https://evil.example.com/orders/1"; the request's URI is "https://api.example.com/orders/1"`},
		{name: "htu other scheme", edit: with("htu", "http://api.example.com/orders/1"), want: `htu is "http://api.example.com/orders/1"; the request's URI is "https://api.example.com/orders/1"`},
		{name: "htu relative", edit: with("htu", "/orders/1"), want: "htu is not an http(s) URI: not an absolute http or https URI"},
		{name: "iat too old", now: t0.Add(91 * time.Second), want: "issued 1m31s ago, longer than dpop.max_age 1m0s (leeway 30s)"},
		{name: "iat in the future", now: t0.Add(-31 * time.Second), want: "issued in the future (iat 31s from now; leeway 30s)"},
		{name: "iat missing", edit: with("iat", nil), want: "the iat claim is missing"},
		{name: "iat a string", edit: with("iat", "now"), want: "the iat claim is not a NumericDate"},
		{name: "jti missing", edit: with("jti", nil), want: "the jti claim is missing"},
		{name: "jti empty", edit: with("jti", ""), want: "the jti claim is not a non-empty string"},
		{name: "htm missing", edit: with("htm", nil), want: "the htm claim is missing"},
		{name: "htu missing", edit: with("htu", nil), want: "the htu claim is missing"},
		{name: "ath missing", edit: with("ath", nil), want: "the ath claim is missing; a proof sent with an access token must carry its hash"},
		{name: "ath of another token", edit: with("ath", AccessTokenHash(theToken+"x")), want: "ath is not the hash of the access token sent with it"},
		{name: "cnf.jkt of another key", req: func(r *Request) { r.JKT = other.thumbprint() }, want: "the proof's key (thumbprint " + ec.thumbprint() + ") is not the key the token is bound to (cnf.jkt " + other.thumbprint() + ")"},
		{name: "no proof", req: func(r *Request) { r.Proof = "" }, want: "no DPoP header; a DPoP-bound token needs a proof on every request"},
		{name: "two proofs", req: func(r *Request) { r.Proof += "," + r.Proof }, want: "more than one DPoP header"},
		{name: "not a JWS", req: func(r *Request) { r.Proof = "abc" }, want: "not a compact JWS: not a JWT: expected three dot-separated parts"},
		{name: "too large", req: func(r *Request) { r.Proof = strings.Repeat("a", MaxProofBytes+1) }, want: "the proof is 8193 bytes, more than 8192"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := ec
			if c.signer != nil {
				s = c.signer
			}
			h, cl := s.header(), goodClaims("jti-"+string(rune('a'+i)))
			if c.edit != nil {
				c.edit(h, cl)
			}
			r := request(s.sign(t, h, cl), s.thumbprint())
			if c.req != nil {
				c.req(r)
			}
			now := c.now
			if now.IsZero() {
				now = t0
			}
			err := checker(now).Check(r)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && err == nil:
				t.Fatalf("accepted, want %q", c.want)
			case c.want != "" && err.Error() != "invalid_dpop_proof: "+c.want:
				t.Fatalf("error\n got %q\nwant %q", err.Error(), "invalid_dpop_proof: "+c.want)
			}
		})
	}
}

// TestReplay: a proof is accepted once within its window; the same jti with another key is
// another proof; once the window has closed the entry is swept, and the proof is then refused
// for its age, not for replay.
func TestReplay(t *testing.T) {
	ec, other := ecSigner(t), ecSigner(t)
	now := t0
	c := NewChecker(Options{MaxAge: 60 * time.Second, Now: func() time.Time { return now }, Replay: NewReplayCache(10)})
	proof := ec.sign(t, ec.header(), goodClaims("once"))
	if err := c.Check(request(proof, ec.thumbprint())); err != nil {
		t.Fatalf("first use refused: %v", err)
	}
	now = t0.Add(89 * time.Second)
	if err := c.Check(request(proof, ec.thumbprint())); err == nil || err.Error() != "invalid_dpop_proof: jti was seen before: the proof is replayed" {
		t.Fatalf("replay: %v", err)
	}
	if err := c.Check(request(other.sign(t, other.header(), goodClaims("once")), other.thumbprint())); err != nil {
		t.Fatalf("the same jti from another key refused: %v", err)
	}
	now = t0.Add(91 * time.Second)
	fresh := goodClaims("later")
	fresh["iat"] = now.Unix()
	if err := c.Check(request(ec.sign(t, ec.header(), fresh), ec.thumbprint())); err != nil {
		t.Fatalf("fresh proof refused: %v", err)
	}
	if n := c.replay.Len(); n != 1 {
		t.Errorf("replay cache holds %d entries after the window closed, want 1 (the fresh proof)", n)
	}
	if err := c.Check(request(proof, ec.thumbprint())); err == nil || !strings.Contains(err.Error(), "longer than dpop.max_age") {
		t.Fatalf("old proof after its window: %v", err)
	}
}

// TestReplayCacheFull: a cache full of open windows refuses new proofs rather than forget one.
func TestReplayCacheFull(t *testing.T) {
	ec := ecSigner(t)
	c := NewChecker(Options{Now: func() time.Time { return t0 }, Replay: NewReplayCache(2)})
	for _, jti := range []string{"1", "2"} {
		if err := c.Check(request(ec.sign(t, ec.header(), goodClaims(jti)), ec.thumbprint())); err != nil {
			t.Fatalf("proof %s refused: %v", jti, err)
		}
	}
	err := c.Check(request(ec.sign(t, ec.header(), goodClaims("3")), ec.thumbprint()))
	want := "invalid_dpop_proof: the replay cache is full (2 proofs inside their window); the proof cannot be checked for replay"
	if err == nil || err.Error() != want {
		t.Fatalf("third proof: %v, want %q", err, want)
	}
}

// TestThumbprint: the thumbprint Parse reports is RFC 7638's, computed independently.
func TestThumbprint(t *testing.T) {
	for _, s := range []*signer{ecSigner(t), edSigner(t, 3), rsaSigner(t)} {
		p, err := Parse(s.sign(t, s.header(), goodClaims("x")), allAlgs)
		if err != nil {
			t.Fatalf("%s: %v", s.alg, err)
		}
		if p.Thumbprint != s.thumbprint() {
			t.Errorf("%s: thumbprint %s, want %s", s.alg, p.Thumbprint, s.thumbprint())
		}
	}
}

func TestNormalizeURI(t *testing.T) {
	cases := []struct{ in, want, err string }{
		{"https://API.Example.com:443/a/b?x=1#f", "https://api.example.com/a/b", ""},
		{"http://h:80", "http://h/", ""},
		{"http://h:8080/%7euser/%2f%41", "http://h:8080/~user/%2FA", ""},
		{"https://h:80/", "https://h:80/", ""},
		{"ftp://h/", "", "not an absolute http or https URI"},
		{"https://u@h/", "", "user information in the URI"},
		{"https:///p", "", "no host"},
	}
	for _, c := range cases {
		got, err := NormalizeURI(c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%s: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}
