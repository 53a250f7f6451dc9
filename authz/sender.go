package authz

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/portcullis-authz/portcullis/dpop"
	"github.com/portcullis-authz/portcullis/reason"
	"github.com/portcullis-authz/portcullis/rules"
)

// Sender-constrained tokens: a token bound to a DPoP key (cnf.jkt, RFC 9449) must come with
// the DPoP scheme and a valid proof of that key on every request; a token bound to a client
// certificate (cnf.x5t#S256, RFC 8705) must come over a connection with that certificate. The
// token may be served from the token cache; the binding is proven on every request.

// SenderOptions configure the checks of sender-constrained tokens.
type SenderOptions struct {
	// DPoPMaxAge is dpop.max_age; zero is dpop.DefaultMaxAge.
	DPoPMaxAge time.Duration
	// ForwardedOrigin is dpop.forwarded_origin: the htu's scheme and authority from
	// X-Forwarded-Proto and X-Forwarded-Host when present.
	ForwardedOrigin bool
	// Replay remembers the proofs seen. The server passes the same cache to every engine it
	// builds, so a configuration reload forgets no proof; nil is a cache of the engine's own.
	Replay *dpop.ReplayCache
	// ClientCertHeader is mtls.client_cert_header: "" reads Request.ClientCert, else the header
	// (x-forwarded-client-cert or client-cert) is read, and removed upstream.
	ClientCertHeader string
}

// sender is the engine's part for sender-constrained tokens.
type sender struct {
	proofs          *dpop.Checker
	forwardedOrigin bool
	certHeader      string
}

func newSender(o SenderOptions, now func() time.Time) sender {
	return sender{
		proofs:          dpop.NewChecker(dpop.Options{MaxAge: o.DPoPMaxAge, Now: now, Replay: o.Replay}),
		forwardedOrigin: o.ForwardedOrigin,
		certHeader:      strings.ToLower(o.ClientCertHeader),
	}
}

// dpopHeader carries the DPoP proof (RFC 9449 §4.1).
const dpopHeader = "dpop"

// checkSender checks the binding of a verified token to the request: nil when it holds (or
// the token is unbound and the rule does not ask for a binding), else the deny.
//   - sent with the DPoP scheme: the token must carry cnf.jkt and the DPoP header a valid
//     proof of that key for this request (invalid_dpop_proof otherwise);
//   - sent as a Bearer token (or from a cookie) while it carries cnf.jkt: refused, always
//     (RFC 9449 §7.2);
//   - carrying cnf.x5t#S256: the client certificate must have that thumbprint;
//   - constrained (require.sender_constrained) and bound to nothing: refused.
func (e *Engine) checkSender(r *Request, raw string, dpopScheme bool, ci *identity, constrained bool) *Decision {
	cnf := ci.id.Confirmation
	switch {
	case dpopScheme && cnf.JKT == "":
		return e.senderDeny(reason.InvalidToken, ci, "the token came with the DPoP scheme but is not bound to a DPoP key (no cnf.jkt)")
	case dpopScheme:
		pol, ok := e.verifier.ProofPolicy(ci.id)
		if !ok {
			return e.senderDeny(reason.InvalidToken, ci, "the token's issuer "+ci.id.Issuer+" is no longer configured")
		}
		uri, err := e.requestURI(r)
		if err != nil && r.Headers[dpopHeader] != "" { // without a proof, that is the error
			return e.senderDeny(reason.InvalidDPoPProof, ci, err.Error())
		}
		err = e.sender.proofs.Check(&dpop.Request{Proof: r.Headers[dpopHeader], Method: r.Method, URI: uri,
			AccessToken: raw, JKT: cnf.JKT, Algorithms: pol.Algorithms, Leeway: pol.Leeway})
		if err != nil {
			var pe *dpop.Error
			detail := err.Error()
			if errors.As(err, &pe) {
				detail = pe.Detail
			}
			return e.senderDeny(reason.InvalidDPoPProof, ci, detail)
		}
	case cnf.JKT != "":
		d := e.senderDeny(reason.InvalidToken, ci, "the token is bound to a DPoP key (cnf.jkt) but came as a Bearer token; send it as Authorization: DPoP with a DPoP proof (RFC 9449 §7.2)")
		return d
	}
	if cnf.X5TS256 != "" {
		got, err := e.clientCertThumbprint(r)
		switch {
		case err != nil:
			return e.senderDeny(reason.InvalidToken, ci, "the token is bound to a client certificate (cnf.x5t#S256), and "+err.Error())
		case subtle.ConstantTimeCompare([]byte(got), []byte(cnf.X5TS256)) != 1:
			return e.senderDeny(reason.InvalidToken, ci, "the client certificate (x5t#S256 "+got+") is not the one the token is bound to (cnf.x5t#S256 "+cnf.X5TS256+")")
		}
	}
	if constrained && !cnf.Bound() {
		return e.senderDeny(reason.InvalidToken, ci, "the rule takes sender-constrained tokens only (require.sender_constrained) and this token is bound to no key or certificate (no cnf)")
	}
	return nil
}

// senderDeny is a deny about a sender-constrained token: its error goes in the DPoP
// challenge, with the algs of the token's issuer.
func (e *Engine) senderDeny(code reason.Code, ci *identity, detail string) *Decision {
	d := e.deny(code, nil)
	d.Detail, d.senderError = detail, true
	if pol, ok := e.verifier.ProofPolicy(ci.id); ok {
		d.proofAlgs = pol.Algorithms
	}
	return d
}

// senderChallenge rewrites the WWW-Authenticate of a deny that carries one (401s and
// insufficient_scope) when DPoP is in play: the deny concerns a sender-constrained token, the
// token came with the DPoP scheme, or the rule is sender_constrained. The challenge of the
// scheme the error concerns comes first, with the error; the other scheme's follows, bare, in
// the same header (RFC 9110 §11.6.1: one field may hold several challenges; Envoy's
// denied_response overwrites a header given twice). The DPoP challenge names the algorithms a
// proof may use (RFC 9449 §7.1). Any other deny keeps its Bearer challenge alone.
func (e *Engine) senderChallenge(d *Decision, r *Request, rule *rules.Rule) {
	if d.Allow {
		return
	}
	i := -1
	for k := range d.Answer {
		if d.Answer[k].Name == "www-authenticate" {
			i = k
		}
	}
	if i < 0 {
		return
	}
	_, dpopScheme, _ := e.findToken(r.Headers)
	if !d.senderError && !dpopScheme && !rule.SenderConstrained() {
		return
	}
	algs := d.proofAlgs
	if algs == nil {
		algs = e.verifier.Algorithms()
	}
	dpopBare := `DPoP algs="` + strings.Join(algs, " ") + `"`
	v := d.Answer[i].Value
	var params string // `error="…", error_description="…"…`, or "" for a bare challenge
	if rest, ok := strings.CutPrefix(v, realm); ok {
		params = strings.TrimPrefix(rest, ", ")
	} else if rest, ok := strings.CutPrefix(v, "DPoP "); ok {
		params = rest
	}
	switch {
	case params == "":
		v = realm + ", " + dpopBare
	case d.senderError || dpopScheme:
		v = "DPoP " + params + `, algs="` + strings.Join(algs, " ") + `", ` + realm
	default:
		v = realm + ", " + params + ", " + dpopBare
	}
	d.Answer = append(d.Answer[:i:i], append([]Header{{"www-authenticate", v}}, d.Answer[i+1:]...)...)
}

// requestURI is the URI the client used, for a proof's htu: the scheme (Request.Scheme) and
// authority (:authority) of the request, or, with dpop.forwarded_origin, those of
// X-Forwarded-Proto and X-Forwarded-Host when the request carries them; then the path.
func (e *Engine) requestURI(r *Request) (string, error) {
	scheme, host := r.Scheme, r.Host
	if e.sender.forwardedOrigin {
		if v := firstValue(r.Headers["x-forwarded-proto"]); v != "" {
			scheme = v
		}
		if v := firstValue(r.Headers["x-forwarded-host"]); v != "" {
			host = v
		}
	}
	if scheme == "" {
		return "", errors.New("the request's scheme is unknown, so htu cannot be checked (the forward-auth proxy must send X-Forwarded-Proto)")
	}
	if host == "" {
		return "", errors.New("the request's authority is unknown, so htu cannot be checked")
	}
	if !hostPort(host) {
		// "h?" or "h/p" would end the authority early: the URI compared would not be the
		// request's, and a proof for one URL would pass for another.
		return "", errors.New("the request's authority is not a host[:port], so htu cannot be checked")
	}
	path := r.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return scheme + "://" + host + path, nil
}

// hostPort reports whether an authority holds none of the characters that end an authority in
// a URI (/ ? # and the backslash browsers read as /), nor user information (@), spaces or
// controls.
func hostPort(a string) bool {
	for i := 0; i < len(a); i++ {
		switch c := a[i]; {
		case c <= ' ' || c >= 0x7f, c == '/', c == '?', c == '#', c == '\\', c == '@':
			return false
		}
	}
	return true
}

func firstValue(v string) string {
	v, _, _ = strings.Cut(v, ",")
	return strings.TrimSpace(v)
}

// clientCertThumbprint is the x5t#S256 (base64url of the SHA-256 of the DER, RFC 8705 §3.1) of
// the client certificate: from the trusted header when mtls.client_cert_header is set, else
// from Envoy's attributes.source.certificate. The error says why there is none.
func (e *Engine) clientCertThumbprint(r *Request) (string, error) {
	var der []byte
	switch e.sender.certHeader {
	case "":
		if r.ClientCert == "" {
			return "", errors.New("the connection presented no client certificate (Envoy: include_peer_certificate: true on the ext_authz filter, and a listener that requests client certificates)")
		}
		var err error
		if der, err = pemCertificate(r.ClientCert); err != nil {
			return "", err
		}
	case "x-forwarded-client-cert":
		v := r.Headers["x-forwarded-client-cert"]
		if v == "" {
			return "", errors.New("the request has no x-forwarded-client-cert header")
		}
		return xfccThumbprint(v)
	case "client-cert":
		v := strings.TrimSpace(r.Headers["client-cert"])
		if v == "" {
			return "", errors.New("the request has no client-cert header")
		}
		// RFC 9440 §2.2: a structured-field byte sequence, ":" base64 of the DER ":".
		if len(v) < 2 || v[0] != ':' || v[len(v)-1] != ':' {
			return "", errors.New("the client-cert header is not an RFC 9440 byte sequence (:base64:)")
		}
		var err error
		if der, err = base64.StdEncoding.DecodeString(v[1 : len(v)-1]); err != nil || len(der) == 0 {
			return "", errors.New("the client-cert header is not valid base64")
		}
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// pemCertificate decodes a URL-encoded PEM certificate (Envoy's attributes.source.certificate,
// the Cert of x-forwarded-client-cert) to its DER.
func pemCertificate(urlEncoded string) ([]byte, error) {
	p, err := url.QueryUnescape(urlEncoded)
	if err != nil {
		return nil, errors.New("the client certificate is not URL-encoded PEM")
	}
	block, _ := pem.Decode([]byte(p))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("the client certificate is not a PEM certificate")
	}
	return block.Bytes, nil
}

// xfccThumbprint reads the client certificate of Envoy's x-forwarded-client-cert header: its
// one element (the TLS-terminating proxy's, with forward_client_cert_details: SANITIZE_SET),
// its Cert (URL-encoded PEM) or else its Hash (hex SHA-256 of the DER). A header of several
// elements is refused: with APPEND_FORWARD the proxy appends its own element after whatever
// the client sent, so no position can be trusted without knowing the hops.
func xfccThumbprint(v string) (string, error) {
	first := firstXFCCElement(v)
	if len(first) < len(v) {
		return "", errors.New("the x-forwarded-client-cert header has several elements, and Portcullis trusts only one: configure the proxy that terminates TLS with forward_client_cert_details: SANITIZE_SET")
	}
	var cert, hash string
	for _, kv := range splitXFCC(first) {
		k, val, _ := strings.Cut(kv, "=")
		val = strings.Trim(val, `"`)
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "cert":
			cert = val
		case "hash":
			hash = val
		}
	}
	switch {
	case cert != "":
		der, err := pemCertificate(cert)
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(der)
		return base64.RawURLEncoding.EncodeToString(sum[:]), nil
	case hash != "":
		sum, err := hex.DecodeString(hash)
		if err != nil || len(sum) != sha256.Size {
			return "", errors.New("the x-forwarded-client-cert Hash is not a hex SHA-256")
		}
		return base64.RawURLEncoding.EncodeToString(sum), nil
	}
	return "", errors.New("the x-forwarded-client-cert header has neither Cert nor Hash")
}

// firstXFCCElement is the first comma-separated element, commas inside quotes excepted.
func firstXFCCElement(v string) string {
	quoted := false
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				return v[:i]
			}
		}
	}
	return v
}

// splitXFCC splits an element into its key=value pairs at semicolons outside quotes.
func splitXFCC(el string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(el); i++ {
		switch el[i] {
		case '"':
			quoted = !quoted
		case ';':
			if !quoted {
				out = append(out, el[start:i])
				start = i + 1
			}
		}
	}
	return append(out, el[start:])
}
