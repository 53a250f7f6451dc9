// Package dpop verifies DPoP proofs (OAuth 2.0 Demonstrating Proof of Possession, RFC 9449):
// the JWT a client sends in the DPoP header of each request to show that it holds the private
// key its access token is bound to (the token's cnf.jkt). It parses a proof with the strict JWS
// parser access tokens go through (token.ParseJWS), takes the key from the proof's own `jwk`
// header with the checks an issuer's keys pass (jwks.ParsePublicKey), verifies the signature
// with the verifiers of package token, and checks the claims against the request: htm, htu,
// iat, ath, the key's RFC 7638 thumbprint against cnf.jkt, and jti against a bounded replay
// cache (replay.go). It knows nothing of Envoy or of rules.
package dpop

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/portcullis-authz/portcullis/jwks"
	"github.com/portcullis-authz/portcullis/token"
)

// Error is a refused proof. Every refusal is answered alike (401, reason invalid_dpop_proof,
// RFC 9449 §7.1); Detail says precisely why, for logs and `portcullis check`. It never holds
// the proof, the token or key material.
type Error struct {
	Detail string
}

func (e *Error) Error() string { return "invalid_dpop_proof: " + e.Detail }

func refuse(format string, args ...any) *Error {
	return &Error{Detail: fmt.Sprintf(format, args...)}
}

// MaxProofBytes bounds the DPoP header: a proof with an RSA key of 16384 bits stays below it.
const MaxProofBytes = 8192

// Type is the `typ` header a proof must carry (RFC 9449 §4.2).
const Type = "dpop+jwt"

// Proof is a proof whose form and signature are verified: its key is the `jwk` of its header,
// the signature verifies with that key, and every claim RFC 9449 §4.2 requires is present with
// its type. Whether it fits a request is Checker.Check's business.
type Proof struct {
	// Alg is the header's alg; Thumbprint the RFC 7638 SHA-256 thumbprint (base64url) of its jwk.
	Alg, Thumbprint string
	// JTI, HTM, HTU and ATH are the claims of those names; ATH is "" when absent.
	JTI, HTM, HTU, ATH string
	IAT                time.Time
}

// privateMembers are the JWK members of private keys (RFC 7518 §6.2.2, §6.3.2, §6.4.1,
// RFC 8037 §2): a proof's key must be public only (RFC 9449 §4.3).
var privateMembers = [...]string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// Parse verifies a proof's form and signature: a compact JWS of at most MaxProofBytes with typ
// dpop+jwt, an alg among algs (an issuer's allow-list, asymmetric algorithms only), a public
// `jwk` fit for that alg, a signature that verifies with it, and the claims jti, htm, htu (non-
// empty strings) and iat (a NumericDate). Every error is an *Error.
func Parse(raw string, algs []string) (*Proof, error) {
	if len(raw) > MaxProofBytes {
		return nil, refuse("the proof is %d bytes, more than %d", len(raw), MaxProofBytes)
	}
	jws, err := token.ParseJWS(raw)
	if err != nil {
		var te *token.Error
		if errors.As(err, &te) {
			return nil, refuse("not a compact JWS: %s", te.Detail)
		}
		return nil, refuse("not a compact JWS")
	}
	var h struct {
		Typ string          `json:"typ"`
		Alg string          `json:"alg"`
		JWK json.RawMessage `json:"jwk"`
	}
	if err := json.Unmarshal(jws.Header, &h); err != nil {
		return nil, refuse("header: typ, alg or jwk has the wrong type")
	}
	if !strings.EqualFold(h.Typ, Type) {
		return nil, refuse("typ is %q; a proof's typ is %s", h.Typ, Type)
	}
	if !slices.Contains(algs, h.Alg) || !slices.Contains(token.SupportedAlgorithms(), h.Alg) {
		return nil, refuse("alg %q is not allowed (allowed: %s)", h.Alg, strings.Join(algs, " "))
	}
	if len(h.JWK) == 0 || string(h.JWK) == "null" {
		return nil, refuse("the header has no jwk")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(h.JWK, &members); err != nil {
		return nil, refuse("jwk is not a JSON object")
	}
	for _, m := range privateMembers {
		if _, ok := members[m]; ok {
			return nil, refuse("jwk holds the private member %q; a proof carries the public key only", m)
		}
	}
	key, err := jwks.ParsePublicKey(h.JWK, jwa.SignatureAlgorithm(h.Alg))
	if err != nil {
		return nil, refuse("jwk is not a public key for %s: %v", h.Alg, err)
	}
	if err := token.VerifySignature(h.Alg, jws.SigningInput, jws.Signature, key.Verifying()); err != nil {
		return nil, refuse("the signature does not verify with the proof's jwk")
	}
	var cl map[string]any
	if err := json.Unmarshal(jws.Payload, &cl); err != nil {
		return nil, refuse("claims are not valid JSON")
	}
	p := &Proof{Alg: h.Alg, Thumbprint: key.Thumbprint}
	for _, f := range []struct {
		name     string
		dst      *string
		required bool
	}{{"jti", &p.JTI, true}, {"htm", &p.HTM, true}, {"htu", &p.HTU, true}, {"ath", &p.ATH, false}} {
		v, ok := cl[f.name]
		if !ok {
			if f.required {
				return nil, refuse("the %s claim is missing", f.name)
			}
			continue
		}
		s, ok := v.(string)
		if !ok || s == "" {
			return nil, refuse("the %s claim is not a non-empty string", f.name)
		}
		*f.dst = s
	}
	iat, ok := cl["iat"]
	if !ok {
		return nil, refuse("the iat claim is missing")
	}
	f, ok := iat.(float64)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return nil, refuse("the iat claim is not a NumericDate")
	}
	sec, frac := math.Modf(f)
	p.IAT = time.Unix(int64(sec), int64(frac*1e9))
	return p, nil
}

// Request is what a proof must fit.
type Request struct {
	// Proof is the DPoP header's value. Repeated DPoP headers arrive joined with commas, which
	// no compact JWS holds: they are refused (RFC 9449 §4.3 allows one).
	Proof string
	// Method is the request's method (htm).
	Method string
	// URI is the request's URI as the client used it, scheme://authority/path; a query and a
	// fragment are ignored (htu, RFC 9449 §4.3).
	URI string
	// AccessToken is the token presented with the proof (ath).
	AccessToken string
	// JKT is the token's cnf.jkt.
	JKT string
	// Algorithms are the token issuer's allowed algorithms; Leeway its clock leeway.
	Algorithms []string
	Leeway     time.Duration
}

// Checker checks proofs against requests. It is safe for concurrent use.
type Checker struct {
	maxAge time.Duration
	now    func() time.Time
	replay *ReplayCache
}

// DefaultMaxAge is how old a proof may be by default (dpop.max_age).
const DefaultMaxAge = 60 * time.Second

// Options build a Checker.
type Options struct {
	// MaxAge is how old a proof may be: its iat must lie in [now − MaxAge − leeway,
	// now + leeway]. Zero is DefaultMaxAge.
	MaxAge time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Replay remembers the proofs seen; nil is a new cache of DefaultReplayEntries. Pass the
	// same cache to the checkers of successive configurations so a reload forgets nothing.
	Replay *ReplayCache
}

// NewChecker builds a checker.
func NewChecker(o Options) *Checker {
	c := &Checker{maxAge: o.MaxAge, now: o.Now, replay: o.Replay}
	if c.maxAge <= 0 {
		c.maxAge = DefaultMaxAge
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.replay == nil {
		c.replay = NewReplayCache(DefaultReplayEntries)
	}
	return c
}

// MaxAge is the proof window the checker applies.
func (c *Checker) MaxAge() time.Duration { return c.maxAge }

// Check verifies that r.Proof is a valid proof for the request r describes (RFC 9449 §4.3,
// §7.1): Parse, then htm equal to the method, htu equal to the URI (both without query and
// fragment, after syntax-based normalisation), iat within the window, ath the base64url SHA-256
// of the access token, the thumbprint of the proof's key equal to cnf.jkt, and, last, a jti
// not seen before within the window (so that a proof refused for another reason does not take
// up its jti). Every error is an *Error.
func (c *Checker) Check(r *Request) error {
	if r.Proof == "" {
		return refuse("no DPoP header; a DPoP-bound token needs a proof on every request")
	}
	if strings.Contains(r.Proof, ",") {
		return refuse("more than one DPoP header")
	}
	p, err := Parse(strings.TrimSpace(r.Proof), r.Algorithms)
	if err != nil {
		return err
	}
	if p.HTM != r.Method {
		return refuse("htm is %q; the request's method is %s", p.HTM, r.Method)
	}
	want, err := NormalizeURI(r.URI)
	if err != nil {
		return refuse("the request's URI cannot be reconstructed: %v", err)
	}
	got, err := NormalizeURI(p.HTU)
	if err != nil {
		return refuse("htu is not an http(s) URI: %v", err)
	}
	if got != want {
		return refuse("htu is %q; the request's URI is %q", got, want)
	}
	now := c.now()
	earliest, latest := now.Add(-c.maxAge-r.Leeway), now.Add(r.Leeway)
	if p.IAT.Before(earliest) {
		return refuse("issued %s ago, longer than dpop.max_age %s (leeway %s)", now.Sub(p.IAT).Truncate(time.Second), c.maxAge, r.Leeway)
	}
	if p.IAT.After(latest) {
		return refuse("issued in the future (iat %s from now; leeway %s)", p.IAT.Sub(now).Truncate(time.Second), r.Leeway)
	}
	if p.ATH == "" {
		return refuse("the ath claim is missing; a proof sent with an access token must carry its hash")
	}
	if subtle.ConstantTimeCompare([]byte(p.ATH), []byte(AccessTokenHash(r.AccessToken))) != 1 {
		return refuse("ath is not the hash of the access token sent with it")
	}
	if subtle.ConstantTimeCompare([]byte(p.Thumbprint), []byte(r.JKT)) != 1 {
		return refuse("the proof's key (thumbprint %s) is not the key the token is bound to (cnf.jkt %s)", p.Thumbprint, r.JKT)
	}
	switch err := c.replay.remember(replayKey(p), p.IAT.Add(c.maxAge+r.Leeway), now); {
	case errors.Is(err, errReplayed):
		return refuse("jti was seen before: the proof is replayed")
	case err != nil:
		return refuse("%v", err)
	}
	return nil
}

// AccessTokenHash is the ath of a token: base64url (unpadded) of its SHA-256 (RFC 9449 §4.2).
func AccessTokenHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
